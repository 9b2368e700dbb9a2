//! Names of the session store's keys (the layout is described in
//! [`crate::sessions`]), without the configured prefix.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

/// A user's or session's id as the store writes it: the 16 bytes in
/// base64url, 22 characters instead of the 36 of the hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactId(pub Uuid);

impl CompactId {
    pub fn parse(text: &str) -> Option<Uuid> {
        let mut bytes = [0u8; 16];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(16) => Some(Uuid::from_bytes(bytes)),
            _ => None,
        }
    }
}

impl CompactId {
    fn encode(self) -> [u8; 22] {
        let mut text = [0u8; 22];
        // 16 bytes are always 22 base64url characters without padding.
        let _ = URL_SAFE_NO_PAD.encode_slice(self.0.as_bytes(), &mut text);
        text
    }
}

impl fmt::Display for CompactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // base64url is ASCII.
        f.write_str(std::str::from_utf8(&self.encode()).map_err(|_| fmt::Error)?)
    }
}

/// As a script argument, without a `String` in between.
impl redis::ToRedisArgs for CompactId {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        out.write_arg(&self.encode());
    }
}

/// One of a user's keys. The braces are a Redis Cluster hash tag: all of a
/// user's keys share one slot, so every script touches a single slot.
#[derive(Debug, Clone, Copy)]
pub enum Key {
    /// `{U}:s:{S}`, a session's hash.
    Session { user: Uuid, session: Uuid },
    /// `{U}:s:`, what a session id is appended to (scripts that walk the index).
    SessionPrefix { user: Uuid },
    /// `{U}:sessions`, the user's index.
    Index { user: Uuid },
    /// `{U}:epoch`, the user's session epoch.
    Epoch { user: Uuid },
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Key::Session { user, session } => {
                write!(f, "{{{}}}:s:{}", CompactId(user), CompactId(session))
            }
            Key::SessionPrefix { user } => write!(f, "{{{}}}:s:", CompactId(user)),
            Key::Index { user } => write!(f, "{{{}}}:sessions", CompactId(user)),
            Key::Epoch { user } => write!(f, "{{{}}}:epoch", CompactId(user)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_ids_are_22_characters_and_read_back() {
        let id = Uuid::now_v7();
        let text = CompactId(id).to_string();
        assert_eq!(text.len(), 22);
        assert_eq!(CompactId::parse(&text), Some(id));
        assert_eq!(CompactId::parse(&id.to_string()), None);
        assert_eq!(CompactId::parse(&text[..21]), None);
        assert_eq!(CompactId::parse(""), None);
    }

    #[test]
    fn a_users_keys_share_its_hash_tag() {
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let tag = format!("{{{}}}", CompactId(user));
        for key in [
            Key::Session { user, session },
            Key::SessionPrefix { user },
            Key::Index { user },
            Key::Epoch { user },
        ] {
            assert!(key.to_string().starts_with(&tag), "{key}");
        }
        assert_eq!(
            Key::Session { user, session }.to_string(),
            format!("{}{}", Key::SessionPrefix { user }, CompactId(session))
        );
    }
}
