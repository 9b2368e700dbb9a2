//! A minimal HTTP/1.1 keep-alive client: the load connections' and the set-up's.
//!
//! A general client (reqwest) spent more CPU per request than a cheap endpoint
//! costs the server, so on a small machine it, not the server, set every
//! scenario's rate. This one writes a request (built once where it never
//! changes) on one TCP connection and reads the answer into a reused buffer:
//! the status line, the headers up to the blank line, then exactly
//! `Content-Length` bytes (or a chunked body, decoded in place). When the
//! server closes the connection (`Connection: close`, idle timeout), the next
//! request opens a new one, and [`Client::reconnects`] counts it.

use std::io::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::load::{Connection, Outcome, served};

/// A request stuck this long is a failure, not a latency sample; it also
/// stops a hung server from hanging the benchmark.
const TIMEOUT: Duration = Duration::from_secs(30);
/// A response head (status line and headers) may not be longer.
const MAX_HEAD: usize = 64 * 1024;
/// Free space made in the read buffer before each read.
const READ_SIZE: usize = 8 * 1024;

/// Appends a request to `out`: `method path`, `Host`, an optional bearer
/// token, and for a body `Content-Type: application/json` and its length.
pub fn encode_request(
    out: &mut Vec<u8>,
    method: &str,
    host: &str,
    path: &str,
    bearer: Option<&str>,
    json_body: Option<&[u8]>,
) {
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(token) = bearer {
        let _ = write!(out, "Authorization: Bearer {token}\r\n");
    }
    match json_body {
        Some(body) => {
            let _ = write!(
                out,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            out.extend_from_slice(body);
        }
        None => out.extend_from_slice(b"\r\n"),
    }
}

/// An answer, borrowed from the client's buffer until its next request.
#[derive(Debug)]
pub struct Response<'a> {
    pub status: u16,
    /// Status line and header lines, without the final blank line.
    head: &'a [u8],
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    /// The first header called `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        header_lines(self.head).find_map(|(key, value)| {
            key.eq_ignore_ascii_case(name.as_bytes())
                .then(|| std::str::from_utf8(value).ok())
                .flatten()
        })
    }

    /// The body of a 2xx; anything else as a short, stable message for the
    /// error samples, e.g. `me: HTTP 401 (invalid_token)`.
    pub fn success_body(self, operation: &str) -> Result<&'a [u8], String> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(format!(
                "{operation}: HTTP {}{}",
                self.status,
                problem_code(self.body)
            ))
        }
    }
}

/// One keep-alive connection to one server (opened on first use).
pub struct Client {
    addr: SocketAddr,
    host: String,
    timeout: Duration,
    stream: Option<TcpStream>,
    /// Bytes read; the last response stays at its front until the next request.
    buf: Vec<u8>,
    /// How much of `buf` the last response took.
    consumed: usize,
    /// Requests and bodies encoded per call are built here.
    request: Vec<u8>,
    body: Vec<u8>,
    connects: u64,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            host: addr.to_string(),
            timeout: TIMEOUT,
            stream: None,
            buf: Vec::with_capacity(READ_SIZE),
            consumed: 0,
            request: Vec::new(),
            body: Vec::new(),
            connects: 0,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The value of `Host` for requests built outside (see [`encode_request`]).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Connections opened after the first one.
    pub fn reconnects(&self) -> u64 {
        self.connects.saturating_sub(1)
    }

    /// Sends a pre-built request and reads its answer.
    pub async fn send(&mut self, request: &[u8]) -> Result<Response<'_>, String> {
        let parsed = self.exchange(request).await?;
        Ok(self.response(parsed))
    }

    pub async fn get(&mut self, path: &str, bearer: Option<&str>) -> Result<Response<'_>, String> {
        let mut request = std::mem::take(&mut self.request);
        request.clear();
        encode_request(&mut request, "GET", &self.host, path, bearer, None);
        let parsed = self.exchange(&request).await;
        self.request = request;
        Ok(self.response(parsed?))
    }

    pub async fn post_json(
        &mut self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Response<'_>, String> {
        self.body.clear();
        serde_json::to_writer(&mut self.body, body).map_err(|err| err.to_string())?;
        let mut request = std::mem::take(&mut self.request);
        request.clear();
        encode_request(
            &mut request,
            "POST",
            &self.host,
            path,
            None,
            Some(&self.body),
        );
        let parsed = self.exchange(&request).await;
        self.request = request;
        Ok(self.response(parsed?))
    }

    fn response(&self, parsed: Parsed) -> Response<'_> {
        Response {
            status: parsed.status,
            head: &self.buf[parsed.head],
            body: &self.buf[parsed.body],
        }
    }

    /// One request and its answer, within the timeout; afterwards the
    /// connection is either ready for the next request or dropped.
    async fn exchange(&mut self, request: &[u8]) -> Result<Parsed, String> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        let result = match tokio::time::timeout(self.timeout, self.exchange_once(request)).await {
            Ok(result) => result,
            Err(_) => Err("timed out".to_string()),
        };
        match result {
            Ok(parsed) => {
                self.consumed = parsed.len;
                if parsed.close {
                    self.stream = None;
                }
                Ok(parsed)
            }
            Err(err) => {
                self.stream = None;
                self.buf.clear();
                Err(err)
            }
        }
    }

    async fn exchange_once(&mut self, request: &[u8]) -> Result<Parsed, String> {
        if let Some(stream) = self.stream.as_mut() {
            match round_trip(stream, &mut self.buf, request).await {
                // The server closed the kept-alive connection before this
                // request reached it: send it again on a new one.
                Err(Failure::Closed) => {}
                result => return result.map_err(String::from),
            }
        }
        // Whatever a closed connection left behind is not this answer.
        self.stream = None;
        self.buf.clear();
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|err| format!("connecting to {}: {err}", self.addr))?;
        stream.set_nodelay(true).map_err(|err| err.to_string())?;
        self.connects += 1;
        let stream = self.stream.insert(stream);
        round_trip(stream, &mut self.buf, request)
            .await
            .map_err(String::from)
    }
}

/// Why a round trip failed.
#[derive(Debug, PartialEq)]
enum Failure {
    /// The connection was closed (or reset) before any byte of the answer.
    Closed,
    Other(String),
}

impl From<Failure> for String {
    fn from(failure: Failure) -> String {
        match failure {
            Failure::Closed => "connection closed before an answer".to_string(),
            Failure::Other(message) => message,
        }
    }
}

fn is_closed(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
    )
}

async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    request: &[u8],
) -> Result<Parsed, Failure> {
    stream.write_all(request).await.map_err(|err| {
        if is_closed(&err) {
            Failure::Closed
        } else {
            Failure::Other(format!("writing: {err}"))
        }
    })?;
    read_response(stream, buf).await
}

/// Reads into `buf` until it holds one whole response.
async fn read_response<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Parsed, Failure> {
    loop {
        if let Some(parsed) = parse(buf).map_err(Failure::Other)? {
            return Ok(parsed);
        }
        buf.reserve(READ_SIZE);
        let nothing_yet = buf.is_empty();
        match reader.read_buf(buf).await {
            Ok(0) if nothing_yet => return Err(Failure::Closed),
            Ok(0) => {
                return Err(Failure::Other(
                    "connection closed in the middle of an answer".to_string(),
                ));
            }
            Ok(_) => {}
            Err(err) if nothing_yet && is_closed(&err) => return Err(Failure::Closed),
            Err(err) => return Err(Failure::Other(format!("reading: {err}"))),
        }
    }
}

/// Where one complete response lies at the front of the buffer.
#[derive(Debug, PartialEq)]
struct Parsed {
    status: u16,
    head: Range<usize>,
    body: Range<usize>,
    /// Bytes the whole response took (head, framing and body).
    len: usize,
    /// The server closes the connection after this response.
    close: bool,
}

/// Parses the response at the front of `buf`: `None` until it is complete.
/// A chunked body is decoded in place, so the body is always one slice.
fn parse(buf: &mut [u8]) -> Result<Option<Parsed>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err("response head over 64 KiB".to_string())
        } else {
            Ok(None)
        };
    };
    let head = &buf[..head_end];
    let status_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let status_line = status_line.strip_suffix(b"\r").unwrap_or(status_line);
    let space = status_line
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(status_line.len());
    let (version, rest) = status_line.split_at(space);
    let status = rest.get(1..4).unwrap_or_default();
    let status_line_ok = version.starts_with(b"HTTP/1.")
        && status.len() == 3
        && status.iter().all(u8::is_ascii_digit)
        && rest.get(4).is_none_or(|&b| b == b' ');
    if !status_line_ok {
        let shown = &status_line[..status_line.len().min(40)];
        return Err(format!(
            "bad status line {:?}",
            String::from_utf8_lossy(shown)
        ));
    }
    let status = status
        .iter()
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));

    let mut content_length = None;
    let mut chunked = false;
    let mut close = version == b"HTTP/1.0";
    for (name, value) in header_lines(head) {
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| "bad Content-Length".to_string())?;
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().map(<[u8]>::trim_ascii);
            if !last.is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked")) {
                return Err("unsupported Transfer-Encoding".to_string());
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if option.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }

    let body_start = head_end + 4;
    let (body, len) = if chunked {
        match dechunk(buf, body_start)? {
            Some((body_len, end)) => (body_start..body_start + body_len, end),
            None => return Ok(None),
        }
    } else if let Some(length) = content_length {
        let end = body_start
            .checked_add(length)
            .ok_or_else(|| "bad Content-Length".to_string())?;
        if buf.len() < end {
            return Ok(None);
        }
        (body_start..end, end)
    } else if matches!(status, 204 | 304) {
        (body_start..body_start, body_start)
    } else {
        return Err(format!(
            "HTTP {status} without Content-Length or chunked body"
        ));
    };
    Ok(Some(Parsed {
        status,
        head: 0..head_end,
        body,
        len,
        close,
    }))
}

/// The header lines of a head (status line skipped) as trimmed (name, value).
fn header_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n').skip(1).filter_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        Some((line[..colon].trim_ascii(), line[colon + 1..].trim_ascii()))
    })
}

/// Decodes the chunked body that starts at `start`, in place: the chunks'
/// data is moved together to begin at `start`. `None` while incomplete;
/// else the decoded length and where the message (trailers included) ends.
fn dechunk(buf: &mut [u8], start: usize) -> Result<Option<(usize, usize)>, String> {
    // First pass: is all of it here, and where does it end?
    let mut at = start;
    let end = loop {
        let Some((size, data)) = chunk_header(buf, at)? else {
            return Ok(None);
        };
        if size == 0 {
            // Trailer lines, then an empty line.
            let mut line = data;
            loop {
                let Some(length) = find(&buf[line..], b"\r\n") else {
                    return Ok(None);
                };
                line += length + 2;
                if length == 0 {
                    break;
                }
            }
            break line;
        }
        let next = data
            .checked_add(size)
            .and_then(|n| n.checked_add(2))
            .ok_or_else(|| "bad chunk size".to_string())?;
        if buf.len() < next {
            return Ok(None);
        }
        if &buf[next - 2..next] != b"\r\n" {
            return Err("chunk data not followed by CRLF".to_string());
        }
        at = next;
    };
    // Second pass: move each chunk's data down. The write position never
    // passes the data being read, nor the chunk headers still to read.
    let (mut at, mut out) = (start, start);
    while let Some((size, data)) = chunk_header(buf, at)? {
        if size == 0 {
            break;
        }
        buf.copy_within(data..data + size, out);
        out += size;
        at = data + size + 2;
    }
    Ok(Some((out - start, end)))
}

/// The chunk-size line at `at`: the size and where its data starts.
fn chunk_header(buf: &[u8], at: usize) -> Result<Option<(usize, usize)>, String> {
    let Some(length) = find(&buf[at..], b"\r\n") else {
        return if buf.len() - at > 1024 {
            Err("chunk-size line too long".to_string())
        } else {
            Ok(None)
        };
    };
    let line = &buf[at..at + length];
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let size = std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.len() <= 15)
        .and_then(|d| usize::from_str_radix(d, 16).ok())
        .ok_or_else(|| "bad chunk size".to_string())?;
    Ok(Some((size, at + length + 2)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The stable code at the end of a problem+json `type`, e.g. ` (invalid_token)`.
fn problem_code(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Problem<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Problem>(body)
        .map(|problem| {
            let kind = problem.kind.as_ref();
            format!(" ({})", kind.rsplit('/').next().unwrap_or(kind))
        })
        .unwrap_or_default()
}

/// `GET path` with a fixed bearer token, expecting 2xx: Tessera's `/v1/me`
/// and the framework baseline's `/me` send the very same request, built once.
pub struct BearerGet {
    client: Client,
    request: Vec<u8>,
}

impl BearerGet {
    pub fn new(addr: SocketAddr, path: &str, token: &str) -> Self {
        let client = Client::new(addr);
        let mut request = Vec::new();
        encode_request(&mut request, "GET", client.host(), path, Some(token), None);
        BearerGet { client, request }
    }
}

impl Connection for BearerGet {
    async fn request(&mut self) -> Outcome {
        let response = self.client.send(&self.request).await;
        let response = response.map_err(|err| format!("me: {err}"))?;
        response.success_body("me").map(served)
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;
    use tokio::net::TcpListener;

    use super::*;

    const PLAIN: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
        CONTENT-LENGTH:  13 \r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n{\"ok\": true }";
    const CHUNKED: &[u8] = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";

    /// A reader that hands out its pieces one read at a time.
    struct Pieces(VecDeque<Vec<u8>>);

    impl Pieces {
        fn split(bytes: &[u8], at: &[usize]) -> Self {
            let mut pieces = VecDeque::new();
            let mut from = 0;
            for &to in at.iter().chain([&bytes.len()]) {
                // An empty read would mean end of stream.
                if to > from {
                    pieces.push_back(bytes[from..to].to_vec());
                }
                from = to;
            }
            Pieces(pieces)
        }
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if let Some(mut piece) = self.0.pop_front() {
                let n = piece.len().min(out.remaining());
                out.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.0.push_front(piece.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    async fn read_split(bytes: &[u8], at: &[usize]) -> (Parsed, Vec<u8>) {
        let mut buf = Vec::new();
        let parsed = read_response(&mut Pieces::split(bytes, at), &mut buf)
            .await
            .unwrap_or_else(|err| panic!("split at {at:?}: {err:?}"));
        (parsed, buf)
    }

    fn body<'a>(parsed: &Parsed, buf: &'a [u8]) -> &'a [u8] {
        &buf[parsed.body.clone()]
    }

    #[tokio::test]
    async fn reads_a_content_length_body_split_anywhere() {
        for i in 0..PLAIN.len() {
            for j in i..PLAIN.len() {
                let (parsed, buf) = read_split(PLAIN, &[i, j]).await;
                assert_eq!(parsed.status, 200);
                assert_eq!(body(&parsed, &buf), b"{\"ok\": true }");
                assert_eq!(parsed.len, PLAIN.len());
                assert!(!parsed.close);
            }
        }
    }

    #[tokio::test]
    async fn reads_a_chunked_body_split_anywhere() {
        for i in 0..CHUNKED.len() {
            for j in i..CHUNKED.len() {
                let (parsed, buf) = read_split(CHUNKED, &[i, j]).await;
                assert_eq!(parsed.status, 201);
                assert_eq!(body(&parsed, &buf), b"hello, world");
                assert_eq!(parsed.len, CHUNKED.len());
            }
        }
    }

    #[tokio::test]
    async fn reads_byte_by_byte() {
        for response in [PLAIN, CHUNKED] {
            let every_byte: Vec<usize> = (1..response.len()).collect();
            let (parsed, _) = read_split(response, &every_byte).await;
            assert_eq!(parsed.len, response.len());
        }
    }

    #[test]
    fn is_incomplete_until_the_last_byte() {
        for response in [PLAIN, CHUNKED] {
            for end in 0..response.len() {
                assert_eq!(parse(&mut response[..end].to_vec()), Ok(None), "{end}");
            }
        }
    }

    #[test]
    fn leaves_what_follows_the_response() {
        let mut buf = [PLAIN, b"HTTP/1.1 204 No Content\r\n\r\n"].concat();
        let first = parse(&mut buf).unwrap().unwrap();
        assert_eq!(first.len, PLAIN.len());
        let second = parse(&mut buf[first.len..]).unwrap().unwrap();
        assert_eq!((second.status, second.body.len()), (204, 0));
    }

    #[test]
    fn finds_headers_and_connection_close() {
        let mut buf = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
            Connection: close\r\ncontent-length: 2\r\n\r\n{}"
            .to_vec();
        let parsed = parse(&mut buf).unwrap().unwrap();
        assert!(parsed.close);
        let response = Response {
            status: parsed.status,
            head: &buf[parsed.head],
            body: &buf[parsed.body],
        };
        assert_eq!(response.header("retry-after"), Some("1"));
        assert_eq!(response.header("x-missing"), None);
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\nbody"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert!(
                parse(&mut bad.to_vec()).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn encodes_a_post() {
        let mut out = Vec::new();
        encode_request(&mut out, "POST", "h:1", "/p", Some("t"), Some(b"{}"));
        assert_eq!(
            out,
            b"POST /p HTTP/1.1\r\nHost: h:1\r\nAuthorization: Bearer t\r\n\
              Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    /// Answers each connection's requests, closing after `per_connection`
    /// answers (announced with `Connection: close` when `announce`).
    async fn server(per_connection: usize, announce: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    for n in 1..=per_connection {
                        if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let close = if announce && n == per_connection {
                            "connection: close\r\n"
                        } else {
                            ""
                        };
                        let answer =
                            format!("HTTP/1.1 200 OK\r\n{close}content-length: 1\r\n\r\n{n}");
                        socket.write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn keeps_the_connection_alive() {
        let mut client = Client::new(server(usize::MAX, false).await);
        for n in 1..=3 {
            let response = client.get("/", None).await.unwrap();
            assert_eq!(response.body, n.to_string().as_bytes());
        }
        assert_eq!(client.reconnects(), 0);
    }

    #[tokio::test]
    async fn reconnects_after_connection_close() {
        let mut client = Client::new(server(2, true).await);
        let bodies: Vec<Vec<u8>> = {
            let mut bodies = Vec::new();
            for _ in 0..5 {
                bodies.push(client.post_json("/", &"x").await.unwrap().body.to_vec());
            }
            bodies
        };
        assert_eq!(bodies, [b"1", b"2", b"1", b"2", b"1"]);
        assert_eq!(client.reconnects(), 2);
    }

    #[tokio::test]
    async fn retries_once_when_an_idle_connection_was_closed() {
        let mut client = Client::new(server(1, false).await);
        for _ in 0..3 {
            assert_eq!(client.get("/", None).await.unwrap().body, b"1");
            // Let the server's close reach the client first.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(client.reconnects(), 2);
    }
}
