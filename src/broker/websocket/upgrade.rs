//! The HTTP side of a WebSocket connection: read the request, decide, answer.
//!
//! The broker upgrades only a `GET` on the configured path that asks for a WebSocket
//! (RFC 6455 §4.2.1), from an allowed `Origin` (§10.2), offering the `mqtt` subprotocol
//! (MQTT-6.0.0-3, MQTT-6.0.0-4) or `mqttv3.1` for MQTT 3.1 clients. Anything else gets a short
//! plain-text HTTP answer and the socket is closed: 404 for another path, 426 for a plain
//! HTTP GET, 403 for a refused origin, 400 for a wrong subprotocol or a malformed request.
//!
//! The request is parsed here rather than by tungstenite's server handshake, which closes the
//! socket without an answer on a plain GET; tungstenite takes over once the 101 is sent.

use std::fmt;
use std::io;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::config::WebSocketSettings;

/// The longest request head accepted. Browsers send well under 2 KiB.
const MAX_HEAD: usize = 8 * 1024;
/// Headers accepted in a request.
const MAX_HEADERS: usize = 48;
/// The subprotocols offered back, in order of preference: `mqtt` (MQTT-6.0.0-4) and the name
/// MQTT 3.1 clients use.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Where and from whom the listener upgrades connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub path: String,
    /// Empty: any origin.
    pub allowed_origins: Vec<String>,
}

impl Endpoint {
    pub fn new(settings: &WebSocketSettings) -> Endpoint {
        Endpoint {
            path: settings.path.clone(),
            allowed_origins: settings.allowed_origins.clone(),
        }
    }
}

/// Why a socket did not become a WebSocket.
#[derive(Debug, Error)]
pub enum Refusal {
    #[error("the client closed the connection before its request was complete")]
    Closed,
    #[error("cannot read the request or write the answer: {0}")]
    Io(#[from] io::Error),
    #[error("answered {} {}: {}", .0.status, .0.phrase, .0.why)]
    Answered(Answer),
}

/// A refusing HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub phrase: &'static str,
    /// The plain-text body, and the reason logged.
    pub why: &'static str,
    /// One more header, such as `Sec-WebSocket-Version: 13` with a 426.
    pub header: Option<&'static str>,
}

impl Answer {
    const fn new(status: u16, phrase: &'static str, why: &'static str) -> Answer {
        Answer {
            status,
            phrase,
            why,
            header: None,
        }
    }

    const fn with_header(mut self, header: &'static str) -> Answer {
        self.header = Some(header);
        self
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = format!("roost: {}\n", self.why);
        write!(f, "HTTP/1.1 {} {}\r\n", self.status, self.phrase)?;
        f.write_str("Content-Type: text/plain; charset=utf-8\r\n")?;
        write!(f, "Content-Length: {}\r\n", body.len())?;
        f.write_str("Connection: close\r\n")?;
        if let Some(header) = self.header {
            write!(f, "{header}\r\n")?;
        }
        write!(f, "\r\n{body}")
    }
}

/// What an acceptable upgrade request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Accept {
    key: String,
    subprotocol: Option<&'static str>,
}

/// Reads the client's request and either upgrades the socket to a WebSocket or answers and
/// closes it. The caller bounds the time it takes.
pub async fn upgrade<S>(
    mut stream: S,
    endpoint: &Endpoint,
    config: WebSocketConfig,
) -> Result<WebSocketStream<S>, Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (head, rest) = match read_head(&mut stream).await? {
        Some(read) => read,
        None => {
            let answer = Answer::new(431, "Request Header Fields Too Large", "request too large");
            return Err(answer_and_close(stream, answer).await);
        }
    };
    let accept = match decide(&head, endpoint) {
        Ok(accept) => accept,
        Err(answer) => return Err(answer_and_close(stream, answer).await),
    };
    let mut response = String::from(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    response.push_str(&format!(
        "Sec-WebSocket-Accept: {}\r\n",
        derive_accept_key(accept.key.as_bytes())
    ));
    if let Some(subprotocol) = accept.subprotocol {
        response.push_str(&format!("Sec-WebSocket-Protocol: {subprotocol}\r\n"));
    }
    response.push_str("\r\n");
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await?;
    // What followed the request head already belongs to the WebSocket.
    Ok(WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(config)).await)
}

/// Answers a socket refused for want of a connection slot: 503, once its request is read
/// (or `wait` has passed), so that the client sees the answer rather than a reset.
pub async fn refuse_busy<S>(mut stream: S, wait: std::time::Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(wait, read_head(&mut stream)).await;
    let answer = Answer::new(503, "Service Unavailable", "server busy, try again later")
        .with_header("Retry-After: 5");
    let _ = answer_and_close(stream, answer).await;
}

/// Reads up to the end of the request head: the head, and whatever came after it; `None`
/// when the head is larger than [`MAX_HEAD`].
async fn read_head<S>(stream: &mut S) -> Result<Option<(Vec<u8>, Vec<u8>)>, Refusal>
where
    S: AsyncRead + Unpin,
{
    let mut buffer = Vec::with_capacity(1024);
    let mut searched: usize = 0;
    loop {
        if buffer.len() >= MAX_HEAD {
            return Ok(None);
        }
        let mut chunk = [0u8; 1024];
        let room = (MAX_HEAD - buffer.len()).min(chunk.len());
        let read = stream.read(&mut chunk[..room]).await?;
        if read == 0 {
            return Err(Refusal::Closed);
        }
        buffer.extend_from_slice(&chunk[..read]);
        // The end may straddle two reads.
        let from = searched.saturating_sub(3);
        if let Some(at) = buffer[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + at + 4;
            let rest = buffer.split_off(end);
            return Ok(Some((buffer, rest)));
        }
        searched = buffer.len();
    }
}

async fn answer_and_close<S>(mut stream: S, answer: Answer) -> Refusal
where
    S: AsyncWrite + Unpin,
{
    let written = async {
        stream.write_all(answer.to_string().as_bytes()).await?;
        stream.flush().await?;
        stream.shutdown().await
    };
    match written.await {
        Ok(()) => Refusal::Answered(answer),
        Err(error) => Refusal::Io(error),
    }
}

/// The decision on a complete request head.
fn decide(head: &[u8], endpoint: &Endpoint) -> Result<Accept, Answer> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(Answer::new(400, "Bad Request", "incomplete request"));
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Answer::new(
                431,
                "Request Header Fields Too Large",
                "too many headers",
            ));
        }
        Err(_) => return Err(Answer::new(400, "Bad Request", "malformed request")),
    }
    let target = request.path.unwrap_or("");
    // The path without a query string; the query is not part of the endpoint's name.
    let path = target.split('?').next().unwrap_or("");
    if path != endpoint.path {
        return Err(Answer::new(404, "Not Found", "not found"));
    }
    if request.method != Some("GET") {
        return Err(Answer::new(405, "Method Not Allowed", "use GET").with_header("Allow: GET"));
    }
    let headers = request.headers;
    // RFC 6455 §4.2.1: an Upgrade header with "websocket" and a Connection header with
    // "Upgrade". Without them, this is a plain HTTP request.
    let upgrade = tokens(headers, "Upgrade").any(|t| t.eq_ignore_ascii_case("websocket"));
    let connection = tokens(headers, "Connection").any(|t| t.eq_ignore_ascii_case("upgrade"));
    if !upgrade || !connection {
        return Err(Answer::new(
            426,
            "Upgrade Required",
            "this is an MQTT over WebSocket endpoint: connect with a WebSocket client \
             (subprotocol mqtt)",
        )
        .with_header("Upgrade: websocket"));
    }
    if request.version != Some(1) {
        return Err(Answer::new(400, "Bad Request", "WebSocket needs HTTP/1.1"));
    }
    // RFC 6455 §4.4: an unsupported version is answered with the one supported.
    if header(headers, "Sec-WebSocket-Version").map(str::trim) != Some("13") {
        return Err(Answer::new(
            426,
            "Upgrade Required",
            "unsupported WebSocket version (13 is supported)",
        )
        .with_header("Sec-WebSocket-Version: 13"));
    }
    // A base64-encoded 16-byte nonce is 24 characters (RFC 6455 §4.1).
    let key = header(headers, "Sec-WebSocket-Key")
        .map(str::trim)
        .filter(|key| key.len() == 24)
        .ok_or(Answer::new(
            400,
            "Bad Request",
            "missing or malformed Sec-WebSocket-Key",
        ))?;
    // RFC 6455 §10.2: the Origin header lets the server refuse pages it does not trust.
    // Clients that are not browsers send none and are not affected.
    if !endpoint.allowed_origins.is_empty()
        && let Some(origin) = header(headers, "Origin").map(str::trim)
        && !endpoint
            .allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    {
        return Err(Answer::new(403, "Forbidden", "origin not allowed"));
    }
    // MQTT-6.0.0-3 asks clients to offer "mqtt". A client that offers no subprotocol at all is
    // served all the same (some device libraries omit the header); one that offers only
    // others is refused, as it would not understand our answer.
    let offered: Vec<&str> = tokens(headers, "Sec-WebSocket-Protocol").collect();
    let subprotocol = if offered.is_empty() {
        None
    } else {
        let chosen = SUBPROTOCOLS.iter().find(|ours| offered.contains(ours));
        Some(*chosen.ok_or(Answer::new(
            400,
            "Bad Request",
            "unsupported WebSocket subprotocol (use mqtt)",
        ))?)
    };
    Ok(Accept {
        key: key.to_string(),
        subprotocol,
    })
}

/// The first value of a header, if it is text.
fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

/// The comma-separated tokens of every header called `name`, trimmed.
fn tokens<'a, 'h>(
    headers: &'h [httparse::Header<'a>],
    name: &'h str,
) -> impl Iterator<Item = &'a str> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            path: "/mqtt".into(),
            allowed_origins: Vec::new(),
        }
    }

    fn request(path: &str, extra: &str) -> Vec<u8> {
        format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn upgrades_on_the_path_and_picks_mqtt() {
        let accept = decide(
            &request("/mqtt", "Sec-WebSocket-Protocol: foo, mqtt\r\n"),
            &endpoint(),
        )
        .unwrap();
        assert_eq!(accept.subprotocol, Some("mqtt"));
        let old = decide(
            &request("/mqtt?x=1", "Sec-WebSocket-Protocol: mqttv3.1\r\n"),
            &endpoint(),
        )
        .unwrap();
        assert_eq!(old.subprotocol, Some("mqttv3.1"));
        let none = decide(&request("/mqtt", ""), &endpoint()).unwrap();
        assert_eq!(none.subprotocol, None);
    }

    #[test]
    fn other_paths_get_404_and_plain_gets_426() {
        assert_eq!(
            decide(&request("/other", ""), &endpoint())
                .unwrap_err()
                .status,
            404
        );
        let plain = b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n";
        assert_eq!(decide(plain, &endpoint()).unwrap_err().status, 426);
    }

    #[test]
    fn wrong_subprotocol_version_key_or_method_are_refused() {
        let only_foo = request("/mqtt", "Sec-WebSocket-Protocol: foo\r\n");
        assert_eq!(decide(&only_foo, &endpoint()).unwrap_err().status, 400);
        let v8 = String::from_utf8(request("/mqtt", ""))
            .unwrap()
            .replace("Version: 13", "Version: 8");
        let answer = decide(v8.as_bytes(), &endpoint()).unwrap_err();
        assert_eq!(
            (answer.status, answer.header),
            (426, Some("Sec-WebSocket-Version: 13"))
        );
        let no_key = String::from_utf8(request("/mqtt", ""))
            .unwrap()
            .replace("Sec-WebSocket-Key", "X-Key");
        assert_eq!(
            decide(no_key.as_bytes(), &endpoint()).unwrap_err().status,
            400
        );
        let post = String::from_utf8(request("/mqtt", ""))
            .unwrap()
            .replace("GET", "POST");
        assert_eq!(
            decide(post.as_bytes(), &endpoint()).unwrap_err().status,
            405
        );
    }

    #[test]
    fn origins_outside_a_non_empty_list_are_forbidden() {
        let mut endpoint = endpoint();
        endpoint.allowed_origins = vec!["https://good.example".into()];
        let good = request("/mqtt", "Origin: https://GOOD.example\r\n");
        assert!(decide(&good, &endpoint).is_ok());
        let evil = request("/mqtt", "Origin: https://evil.example\r\n");
        assert_eq!(decide(&evil, &endpoint).unwrap_err().status, 403);
        // Not a browser: no Origin, not affected.
        assert!(decide(&request("/mqtt", ""), &endpoint).is_ok());
    }

    #[tokio::test]
    async fn a_request_head_larger_than_the_limit_is_answered_431() {
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let mut big = request("/mqtt", "");
        big.truncate(big.len() - 2);
        big.extend(std::iter::repeat_n(b'x', MAX_HEAD));
        theirs.write_all(&big).await.unwrap();
        let refused = upgrade(ours, &endpoint(), WebSocketConfig::default()).await;
        assert!(matches!(refused, Err(Refusal::Answered(a)) if a.status == 431));
        let mut answer = String::new();
        theirs.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }
}
