//! A lean HTTP/1.1 keep-alive client for the hot path of the load (the calls that are
//! measured). Each simulated user owns one [`Pool`] of connections.
//!
//! Why not reqwest/hyper here: on a 2-core machine the load generator competes with the
//! server for CPU, so every microsecond the client spends per call is taken from the
//! system under test. Measured against the plain baseline route, a reqwest client
//! reached ~21k req/s where `wrk -t2 -c64` reaches ~87k; this client writes a request
//! with one `write`, parses only the status line and the framing headers, and reuses
//! its buffers. reqwest is still used for the few setup calls.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest header block accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

/// The parts of a response head the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// `Content-Length`, when given.
    pub content_length: Option<usize>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The server will close the connection after this response.
    pub close: bool,
    /// Bytes of the head, including the blank line.
    pub len: usize,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parses a response head from the start of `buf`; `Ok(None)` when incomplete.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(bad("response head too large"));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| bad("non-UTF-8 response head"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("not an HTTP/1 response: {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut head = Head {
        status,
        content_length: None,
        chunked: false,
        close: version == "HTTP/1.0",
        len: end + 4,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| bad("bad Content-Length"))?;
            if n > MAX_BODY {
                return Err(bad("response body too large"));
            }
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.close = true;
            } else if v.contains("keep-alive") {
                head.close = false;
            }
        }
    }
    Ok(Some(head))
}

/// Decodes a chunked body at the start of `buf`: `Ok(Some((body, consumed)))` when
/// complete, `Ok(None)` when more bytes are needed.
pub fn decode_chunked(buf: &[u8]) -> io::Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    let mut i = 0;
    // Each round consumes one chunk; a body has far fewer than this many chunks.
    for _ in 0..1_000_000 {
        let Some(nl) = buf[i..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&buf[i..i + nl]).map_err(|_| bad("bad chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
        i += nl + 2;
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            let Some(end) = buf[i..].windows(2).position(|w| w == b"\r\n") else {
                return Ok(None);
            };
            if end != 0 {
                let Some(t) = buf[i..].windows(4).position(|w| w == b"\r\n\r\n") else {
                    return Ok(None);
                };
                return Ok(Some((body, i + t + 4)));
            }
            return Ok(Some((body, i + 2)));
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("response body too large"));
        }
        if buf.len() < i + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[i..i + size]);
        i += size + 2;
    }
    Err(bad("too many chunks"))
}

/// One keep-alive connection.
struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
    req: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            addr,
            buf: Vec::with_capacity(8192),
            req: Vec::with_capacity(1024),
        })
    }

    /// Sends one request and reads its response. `Err` with `reused_eof` set means the
    /// connection was found closed before any byte of a response arrived.
    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: Option<&[u8]>,
    ) -> Result<(Response, bool), (io::Error, bool)> {
        self.req.clear();
        let host = self.addr;
        let _ = std::io::Write::write_fmt(
            &mut self.req,
            format_args!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"),
        );
        match body {
            Some(b) => {
                let _ = std::io::Write::write_fmt(
                    &mut self.req,
                    format_args!(
                        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        b.len()
                    ),
                );
                self.req.extend_from_slice(b);
            }
            None => self.req.extend_from_slice(b"\r\n"),
        }
        if let Err(e) = self.stream.write_all(&self.req).await {
            return Err((e, true));
        }
        self.buf.clear();
        let head = loop {
            if let Some(h) = parse_head(&self.buf).map_err(|e| (e, false))? {
                break h;
            }
            let n = self.stream.read_buf(&mut self.buf).await.map_err(|e| {
                let early = self.buf.is_empty();
                (e, early)
            })?;
            if n == 0 {
                let early = self.buf.is_empty();
                return Err((
                    io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"),
                    early,
                ));
            }
        };
        let (body, close) = if head.chunked {
            loop {
                if let Some((b, _)) =
                    decode_chunked(&self.buf[head.len..]).map_err(|e| (e, false))?
                {
                    break (b, head.close);
                }
                let n = self
                    .stream
                    .read_buf(&mut self.buf)
                    .await
                    .map_err(|e| (e, false))?;
                if n == 0 {
                    return Err((bad("connection closed inside a chunked body"), false));
                }
            }
        } else if let Some(len) = head.content_length {
            let want = head.len + len;
            while self.buf.len() < want {
                let n = self
                    .stream
                    .read_buf(&mut self.buf)
                    .await
                    .map_err(|e| (e, false))?;
                if n == 0 {
                    return Err((bad("connection closed inside the body"), false));
                }
            }
            (self.buf[head.len..want].to_vec(), head.close)
        } else if head.status == 204 || head.status == 304 || (100..200).contains(&head.status) {
            (Vec::new(), head.close)
        } else {
            // Body runs to the end of the connection (bounded by MAX_BODY).
            loop {
                let n = self
                    .stream
                    .read_buf(&mut self.buf)
                    .await
                    .map_err(|e| (e, false))?;
                if n == 0 {
                    break;
                }
                if self.buf.len() > head.len + MAX_BODY {
                    return Err((bad("response body too large"), false));
                }
            }
            (self.buf[head.len..].to_vec(), true)
        };
        Ok((
            Response {
                status: head.status,
                body,
            },
            close,
        ))
    }
}

/// Idle keep-alive connections of one simulated user.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

/// Most idle connections a pool keeps.
const MAX_IDLE: usize = 256;

impl Pool {
    /// An empty pool.
    pub fn new() -> Pool {
        Pool::default()
    }

    /// The newest idle connection to `addr`. Connections to other nodes stay (a user
    /// sending orders to their statements' owners calls several); those to an old
    /// address (a node restarted on a new port) age out in [`Pool::give_back`].
    fn take(&self, addr: SocketAddr) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let i = idle.iter().rposition(|c| c.addr == addr)?;
        Some(idle.remove(i))
    }

    /// Keeps `c` for reuse; when the pool is full, its oldest idle connection goes.
    fn give_back(&self, c: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(c);
    }

    /// Sends a request to `addr` on an idle connection or a new one, within `timeout`.
    /// `headers` are whole header lines, each ending in CRLF (say the Authorization).
    /// A reused connection found closed before answering is replaced once.
    pub async fn request(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> io::Result<Response> {
        let work = async {
            let mut conn = match self.take(addr) {
                Some(c) => {
                    let mut c = c;
                    match c.exchange(method, path, headers, body).await {
                        Ok((r, close)) => {
                            if !close {
                                self.give_back(c);
                            }
                            return Ok(r);
                        }
                        Err((e, true)) if is_stale(&e) => Conn::open(addr).await?,
                        Err((e, _)) => return Err(e),
                    }
                }
                None => Conn::open(addr).await?,
            };
            let (r, close) = conn
                .exchange(method, path, headers, body)
                .await
                .map_err(|(e, _)| e)?;
            if !close {
                self.give_back(conn);
            }
            Ok(r)
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))?
    }
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\ncontent-type: application/json\r\n\r\n{\"a\":1}";
        let h = parse_head(r).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.content_length, Some(12));
        assert!(!h.chunked && !h.close);
        assert_eq!(&r[h.len..], b"{\"a\":1}");
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        let h = parse_head(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 503);
        assert!(h.chunked && h.close);
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        assert!(
            parse_head(b"HTTP/1.0 200 OK\r\n\r\n")
                .unwrap()
                .unwrap()
                .close
        );
    }

    #[test]
    fn decodes_chunks() {
        let b = b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\nNEXT";
        let (body, used) = decode_chunked(b).unwrap().unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&b[used..], b"NEXT");
        assert_eq!(decode_chunked(b"4\r\nWik").unwrap(), None);
        assert_eq!(decode_chunked(b"4\r\nWiki\r\n0\r\n").unwrap(), None);
        assert!(decode_chunked(b"zz\r\n").is_err());
    }

    /// A tiny server answering two keep-alive requests on one connection, then closing.
    #[tokio::test]
    async fn keeps_alive_and_replaces_closed_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                for i in 0..2 {
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = s.read(&mut buf).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    let body = format!("{{\"n\":{i}}}");
                    let resp = if i == 0 {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        format!("HTTP/1.1 409 Conflict\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
                    };
                    s.write_all(resp.as_bytes()).await.unwrap();
                }
                // Closing here makes the pooled connection stale.
            }
        });
        let pool = Pool::new();
        let t = Duration::from_secs(5);
        let r = pool
            .request(addr, "GET", "/a", "Authorization: Bearer x\r\n", None, t)
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"n\":0}"[..]));
        let r = pool
            .request(
                addr,
                "POST",
                "/b",
                "Authorization: Bearer x\r\n",
                Some(b"{}"),
                t,
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (409, &b"{\"n\":1}"[..]));
        // The server closed that connection; the pool notices and opens a new one.
        let r = pool
            .request(addr, "GET", "/c", "Authorization: Bearer x\r\n", None, t)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        drop(pool);
        server.await.unwrap();
    }
}
