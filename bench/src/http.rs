//! The HTTP/1.1 keep-alive client of the load connections and the set-up:
//! hyper's connection-level client (`hyper::client::conn::http1`), one
//! connection per [`Client`], no pool.
//!
//! A general client (reqwest) spent more CPU per request than a cheap endpoint
//! costs the server, so on a small machine it, not the server, set every
//! scenario's rate. This one keeps what costs little: one `TcpStream`
//! (`TCP_NODELAY`) per client, requests whose method, target and headers are
//! built once where they never change ([`Prepared`]), and the connection
//! driven inside the request's own future rather than by a task of its own,
//! so a request costs no hand-over between tasks. When the server closes the
//! connection (`Connection: close`, idle timeout), the next request opens a
//! new one, and [`Client::reconnects`] counts it.

use std::fmt::Write as _;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use poem::web::headers::{Authorization, Header};
use serde::Serialize;
use tokio::net::TcpStream;

use crate::load::{Connection, Outcome, served};

/// A request stuck this long is a failure, not a latency sample; it also
/// stops a hung server from hanging the benchmark.
const TIMEOUT: Duration = Duration::from_secs(30);

type Body = Full<Bytes>;
type Conn = http1::Connection<TokioIo<TcpStream>, Body>;

/// A request's method, target and headers (`Host`, an optional
/// `Authorization`, the body's `Content-Type`), built once; hyper adds
/// `Content-Length` from the body.
#[derive(Debug, Clone)]
pub struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Prepared {
    fn new(
        method: Method,
        host: &HeaderValue,
        path: &str,
        authorization: Option<HeaderValue>,
        content_type: Option<&'static str>,
    ) -> Result<Self, String> {
        let uri = path
            .parse()
            .map_err(|err| format!("bad path {path:?}: {err}"))?;
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(header::HOST, host.clone());
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value);
        }
        if let Some(content_type) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        Ok(Prepared {
            method,
            uri,
            headers,
        })
    }

    fn request(&self, body: Bytes) -> Request<Body> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// An answer with its whole body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The first header called `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        let value = self.headers.get(name)?.to_str().ok()?;
        Some(value.trim())
    }

    /// The body of a 2xx; anything else as a short, stable message for the
    /// error samples, e.g. `me: HTTP 401 (invalid_token)`.
    pub fn success_body(self, operation: &str) -> Result<Bytes, String> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(format!(
                "{operation}: HTTP {}{}",
                self.status,
                problem_code(&self.body)
            ))
        }
    }
}

/// An open connection: hyper's handle to send on, and the connection itself,
/// which does its reading and writing only while polled ([`drive`]).
struct Open {
    sender: SendRequest<Body>,
    /// `None` once it has ended (closed by either side, or failed).
    conn: Option<Conn>,
}

/// Runs `future` while polling the connection, which does the I/O that
/// `future` waits for.
async fn drive<F: Future>(conn: &mut Option<Conn>, future: F) -> F::Output {
    let mut future = pin!(future);
    poll_fn(|cx| {
        if let Some(running) = conn.as_mut()
            && Pin::new(running).poll(cx).is_ready()
        {
            // Dropping it fails whatever still waits on it.
            *conn = None;
        }
        future.as_mut().poll(cx)
    })
    .await
}

impl Open {
    /// Whether a request may be sent: polling the connection first notices
    /// a close that has already arrived (the server's idle timeout, or the
    /// end of a `Connection: close` exchange).
    async fn is_usable(&mut self) -> bool {
        let sender = &mut self.sender;
        let ready = drive(&mut self.conn, poll_fn(|cx| sender.poll_ready(cx))).await;
        ready.is_ok() && self.conn.is_some()
    }

    async fn round_trip(&mut self, request: Request<Body>) -> Result<Response, Failure> {
        let sent = self.sender.send_request(request);
        let response = drive(&mut self.conn, sent).await?;
        let (parts, body) = response.into_parts();
        let body = drive(&mut self.conn, body.collect())
            .await
            .map_err(|err| Failure::Other(format!("reading the body: {}", describe(&err))))?
            .to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// Why a round trip failed.
#[derive(Debug)]
enum Failure {
    /// The connection was closed (or reset) before any answer: the request
    /// may be sent again on a new one.
    Closed(String),
    Other(String),
}

impl From<hyper::Error> for Failure {
    fn from(err: hyper::Error) -> Self {
        let closed = err.is_canceled()
            || err.is_incomplete_message()
            || std::error::Error::source(&err)
                .and_then(|source| source.downcast_ref::<std::io::Error>())
                .is_some_and(is_closed);
        let message = describe(&err);
        if closed {
            Failure::Closed(message)
        } else {
            Failure::Other(message)
        }
    }
}

impl From<Failure> for String {
    fn from(failure: Failure) -> String {
        match failure {
            Failure::Closed(message) | Failure::Other(message) => message,
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

/// hyper's message with its cause, e.g. `connection error: Connection reset by peer`.
fn describe(err: &hyper::Error) -> String {
    match std::error::Error::source(err) {
        Some(source) => format!("{err}: {source}"),
        None => err.to_string(),
    }
}

/// One keep-alive connection to one server (opened on first use).
pub struct Client {
    addr: SocketAddr,
    host: HeaderValue,
    timeout: Duration,
    open: Option<Open>,
    connects: u64,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            host: HeaderValue::try_from(addr.to_string()).expect("an address is a header value"),
            timeout: TIMEOUT,
            open: None,
            connects: 0,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connections opened after the first one.
    pub fn reconnects(&self) -> u64 {
        self.connects.saturating_sub(1)
    }

    /// A request to build once and [`send`](Self::send) many times (a POST
    /// sends JSON).
    pub fn prepare(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<Prepared, String> {
        let authorization = bearer
            .map(|token| {
                HeaderValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| "bearer token is not a header value".to_string())
            })
            .transpose()?;
        let json = (method == Method::POST).then_some("application/json");
        Prepared::new(method, &self.host, path, authorization, json)
    }

    /// A form POST (`application/x-www-form-urlencoded`) with HTTP Basic
    /// credentials, to build once and [`send`](Self::send) many times.
    pub fn prepare_form(&self, path: &str, id: &str, secret: &str) -> Result<Prepared, String> {
        let basic = Authorization::basic(id, secret);
        let mut values = Vec::with_capacity(1);
        basic.encode(&mut values);
        let authorization = values.pop().ok_or("no Authorization value")?;
        let form = Some("application/x-www-form-urlencoded");
        Prepared::new(Method::POST, &self.host, path, Some(authorization), form)
    }

    /// Sends a prepared request with `body` and reads its whole answer.
    pub async fn send(&mut self, prepared: &Prepared, body: Bytes) -> Result<Response, String> {
        match tokio::time::timeout(self.timeout, self.exchange(prepared, body)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => {
                self.open = None;
                Err(err)
            }
            Err(_) => {
                // Dropping the connection cancels the request.
                self.open = None;
                Err("timed out".to_string())
            }
        }
    }

    pub async fn get(&mut self, path: &str, bearer: Option<&str>) -> Result<Response, String> {
        let prepared = self.prepare(Method::GET, path, bearer)?;
        self.send(&prepared, Bytes::new()).await
    }

    pub async fn post_json(
        &mut self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Response, String> {
        let body = serde_json::to_vec(body).map_err(|err| err.to_string())?;
        let prepared = self.prepare(Method::POST, path, None)?;
        self.send(&prepared, body.into()).await
    }

    /// One request and its answer; on a kept-alive connection that turns
    /// out closed before answering, once more on a new one.
    async fn exchange(&mut self, prepared: &Prepared, body: Bytes) -> Result<Response, String> {
        if let Some(open) = self.open.as_mut() {
            if open.is_usable().await {
                match open.round_trip(prepared.request(body.clone())).await {
                    // The server closed the connection before this request
                    // reached it: send it again on a new one.
                    Err(Failure::Closed(_)) => {}
                    result => return result.map_err(String::from),
                }
            }
            self.open = None;
        }
        let open = self.connect().await?;
        open.round_trip(prepared.request(body))
            .await
            .map_err(String::from)
    }

    async fn connect(&mut self) -> Result<&mut Open, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|err| format!("connecting to {}: {err}", self.addr))?;
        stream.set_nodelay(true).map_err(|err| err.to_string())?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| format!("handshake: {}", describe(&err)))?;
        self.connects += 1;
        Ok(self.open.insert(Open {
            sender,
            conn: Some(conn),
        }))
    }
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

/// `value` as a form field's value (`application/x-www-form-urlencoded`):
/// every byte but the unreserved ones (RFC 3986) percent-encoded. Tessera's
/// tokens (base64url, JWTs) pass unchanged.
pub fn form_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// `GET path` with a fixed bearer token, expecting 2xx: Tessera's `/v1/me`
/// and the framework baseline's `/me` send the very same request, built once.
pub struct BearerGet {
    client: Client,
    request: Prepared,
}

impl BearerGet {
    pub fn new(addr: SocketAddr, path: &str, token: &str) -> Self {
        let client = Client::new(addr);
        let request = client
            .prepare(Method::GET, path, Some(token))
            .expect("a path and a token the server issued form a valid request");
        BearerGet { client, request }
    }
}

impl Connection for BearerGet {
    async fn request(&mut self) -> Outcome {
        let response = self.client.send(&self.request, Bytes::new()).await;
        let response = response.map_err(|err| format!("me: {err}"))?;
        response.success_body("me").map(served)
    }

    fn reconnects(&self) -> u64 {
        self.client.reconnects()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Reads one whole request (head, then `Content-Length` bytes); `None`
    /// when the client closed the connection first.
    async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
        loop {
            let text = String::from_utf8_lossy(buf).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let head = &text[..head_end];
                let length = head
                    .lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, value)| value.trim().parse::<usize>().unwrap());
                let end = head_end + 4 + length;
                if buf.len() >= end {
                    let request = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end);
                    return Some(request);
                }
            }
            if socket.read_buf(buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    /// How the test server treats each connection.
    #[derive(Clone, Copy)]
    enum Close {
        /// Never closes.
        Never,
        /// Closes after this many answers, the last with `Connection: close`.
        Announced(usize),
        /// Closes after this many answers, unannounced.
        Silently(usize),
        /// Reads this many requests but answers one fewer, then closes.
        BeforeAnswering(usize),
    }

    /// Answers each request with `n`, its number on its connection.
    async fn server(close: Close) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for n in 1.. {
                        if read_request(&mut socket, &mut buf).await.is_none() {
                            return;
                        }
                        let (answer, last) = match close {
                            Close::Never => (true, false),
                            Close::Announced(k) | Close::Silently(k) => (true, n == k),
                            Close::BeforeAnswering(k) => (n < k, n == k),
                        };
                        if answer {
                            let header = match close {
                                Close::Announced(k) if n == k => "connection: close\r\n",
                                _ => "",
                            };
                            let answer =
                                format!("HTTP/1.1 200 OK\r\n{header}content-length: 1\r\n\r\n{n}");
                            socket.write_all(answer.as_bytes()).await.unwrap();
                        }
                        if last {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn bodies(responses: &[Response]) -> Vec<&[u8]> {
        responses.iter().map(|r| &r.body[..]).collect()
    }

    #[tokio::test]
    async fn keeps_the_connection_alive() {
        let mut client = Client::new(server(Close::Never).await);
        let mut responses = Vec::new();
        for _ in 0..3 {
            responses.push(client.get("/", None).await.unwrap());
        }
        assert_eq!(bodies(&responses), [b"1", b"2", b"3"]);
        assert_eq!(client.reconnects(), 0);
    }

    #[tokio::test]
    async fn reconnects_after_connection_close() {
        let mut client = Client::new(server(Close::Announced(2)).await);
        let mut responses = Vec::new();
        for _ in 0..5 {
            responses.push(client.post_json("/", &"x").await.unwrap());
        }
        assert_eq!(bodies(&responses), [b"1", b"2", b"1", b"2", b"1"]);
        assert_eq!(client.reconnects(), 2);
    }

    #[tokio::test]
    async fn reconnects_when_an_idle_connection_was_closed() {
        let mut client = Client::new(server(Close::Silently(1)).await);
        for _ in 0..3 {
            assert_eq!(&client.get("/", None).await.unwrap().body[..], b"1");
            // Let the server's close reach the client first.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(client.reconnects(), 2);
    }

    #[tokio::test]
    async fn retries_once_when_a_kept_alive_connection_closes_unanswered() {
        let mut client = Client::new(server(Close::BeforeAnswering(2)).await);
        for _ in 0..3 {
            assert_eq!(&client.get("/", None).await.unwrap().body[..], b"1");
        }
        assert_eq!(client.reconnects(), 2);
    }

    #[tokio::test]
    async fn does_not_retry_on_a_new_connection() {
        let mut client = Client::new(server(Close::BeforeAnswering(1)).await);
        assert!(client.get("/", None).await.is_err());
        assert_eq!(client.reconnects(), 0);
    }

    /// Sends one request, `prepare`d by the client, with `body`; returns
    /// the address and the request as the server read it, in lower case.
    async fn sent(
        prepare: impl FnOnce(&Client) -> Prepared,
        body: &'static [u8],
    ) -> (SocketAddr, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let request = read_request(&mut socket, &mut buf).await.unwrap();
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            request
        });
        let mut client = Client::new(addr);
        let prepared = prepare(&client);
        let response = client.send(&prepared, Bytes::from_static(body)).await;
        assert_eq!(response.unwrap().status, 200);
        (addr, seen.await.unwrap().to_ascii_lowercase())
    }

    fn has_line(request: &str, line: &str) -> bool {
        request.contains(&format!("\r\n{line}\r\n"))
    }

    #[tokio::test]
    async fn sends_the_prepared_request() {
        let prepare = |client: &Client| client.prepare(Method::POST, "/p", Some("t")).unwrap();
        let (addr, request) = sent(prepare, b"{}").await;
        assert!(request.starts_with("post /p http/1.1\r\n"), "{request}");
        for line in [
            format!("host: {addr}"),
            "authorization: bearer t".to_string(),
            "content-type: application/json".to_string(),
            "content-length: 2".to_string(),
        ] {
            assert!(has_line(&request, &line), "{request}");
        }
        assert!(request.ends_with("\r\n\r\n{}"), "{request}");
    }

    #[tokio::test]
    async fn sends_a_form_with_basic_credentials() {
        let prepare = |client: &Client| client.prepare_form("/f", "id", "secret").unwrap();
        let (_, request) = sent(prepare, b"token=t").await;
        assert!(request.starts_with("post /f http/1.1\r\n"), "{request}");
        for line in [
            // base64("id:secret")
            "authorization: basic awq6c2vjcmv0",
            "content-type: application/x-www-form-urlencoded",
            "content-length: 7",
        ] {
            assert!(has_line(&request, line), "{request}");
        }
        assert!(request.ends_with("\r\n\r\ntoken=t"), "{request}");
    }

    #[test]
    fn form_values_keep_only_unreserved_bytes() {
        assert_eq!(form_value("tsr_aZ09-._~"), "tsr_aZ09-._~");
        assert_eq!(form_value("a+b/c= d&é"), "a%2Bb%2Fc%3D%20d%26%C3%A9");
    }

    #[tokio::test]
    async fn reads_headers_and_problem_codes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            read_request(&mut socket, &mut buf).await.unwrap();
            let body = r#"{"type":"https://tessera.dev/problems/overloaded"}"#;
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After:  1 \r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let response = Client::new(addr).get("/", None).await.unwrap();
        assert_eq!(response.header("retry-after"), Some("1"));
        assert_eq!(response.header("x-missing"), None);
        assert_eq!(
            response.success_body("signin").unwrap_err(),
            "signin: HTTP 503 (overloaded)"
        );
    }

    #[tokio::test]
    async fn times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // Accepts, never answers.
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let mut client = Client::new(addr).with_timeout(Duration::from_millis(50));
        assert_eq!(client.get("/", None).await.unwrap_err(), "timed out");
    }
}
