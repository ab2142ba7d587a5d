//! Reading a market's live stream (`GET /events`, Server-Sent Events): [`EventSource`]
//! yields each [`SseEvent`] and remembers the last id, so a caller that loses the
//! connection opens a new one with it and misses nothing.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::client::error::{one_line, ClientError};

/// Longest silence on a stream before it is taken for dead (the market sends a
/// keep-alive comment every 15 s).
pub const READ_TIMEOUT: Duration = Duration::from_secs(45);
/// Largest event accepted (the market's are a few hundred bytes).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its id, for events a stream resumes after.
    pub id: Option<String>,
    /// Its kind (`event:`), `message` when none is given.
    pub event: String,
    /// Its data lines, joined by newlines.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON (the market's events are JSON objects).
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_str(&self.data).map_err(|e| {
            ClientError::Invalid(format!(
                "event {} has data that is not JSON: {e}",
                self.event
            ))
        })
    }
}

/// Takes the complete events out of `buf` (what arrived so far), leaving a partial one.
/// Comments and fields other than `id`, `event` and `data` are skipped; a block without
/// data is not an event.
pub fn take_events(buf: &mut Vec<u8>) -> Vec<SseEvent> {
    let mut out = Vec::new();
    // A blank line ends an event; lines end in \n or \r\n. Bytes are split only at
    // a complete block, so a character cut between chunks arrives whole.
    while let Some((end, skip)) = block_end(buf) {
        let block = String::from_utf8_lossy(&buf[..end]).replace("\r\n", "\n");
        buf.drain(..end + skip);
        let (mut id, mut event, mut data) = (None, None, Vec::new());
        for line in block.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "id" => id = Some(value.to_owned()),
                "event" => event = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        if !data.is_empty() {
            out.push(SseEvent {
                id,
                event: event.unwrap_or_else(|| "message".into()),
                data: data.join("\n"),
            });
        }
    }
    out
}

/// Where the first block of `buf` ends and how long its terminating blank line is.
fn block_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// An open stream.
pub struct EventSource {
    response: reqwest::Response,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<SseEvent>,
    last_id: Option<String>,
}

impl EventSource {
    /// Opens `url` with `token`, resuming after `last_id` when given.
    pub async fn open(
        url: reqwest::Url,
        token: Option<&str>,
        last_id: Option<&str>,
    ) -> Result<EventSource, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(crate::client::transport::CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let base = format!("{}://{}", url.scheme(), url.authority());
        let mut request = http.get(url).header(ACCEPT, "text/event-stream").header(
            crate::protocol::REQUEST_ID_HEADER,
            format!("{:016x}", rand::random::<u64>()),
        );
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(|e| {
            ClientError::Transport(format!(
                "cannot open the event stream at {base}: {}",
                one_line(&e.to_string())
            ))
        })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(ClientError::from_http_body(status.as_u16(), &text));
        }
        let ctype = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ctype.starts_with("text/event-stream") {
            return Err(ClientError::Invalid(format!(
                "the market answered the event stream with {ctype:?}, not text/event-stream"
            )));
        }
        Ok(EventSource {
            response,
            buf: Vec::new(),
            pending: Default::default(),
            last_id: last_id.map(str::to_owned),
        })
    }

    /// The id of the last event received (or the one it resumed after).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The next event; `None` when the market ended the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ClientError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                if e.id.is_some() {
                    self.last_id.clone_from(&e.id);
                }
                return Ok(Some(e));
            }
            let chunk = self.response.chunk().await.map_err(|e| {
                ClientError::Transport(format!(
                    "lost the event stream: {}",
                    one_line(&e.to_string())
                ))
            })?;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            self.buf.extend_from_slice(&chunk);
            self.pending.extend(take_events(&mut self.buf));
            if self.buf.len() > MAX_EVENT_BYTES {
                return Err(ClientError::Invalid(format!(
                    "an event of the stream passed {MAX_EVENT_BYTES} bytes"
                )));
            }
        }
    }
}

/// True when the data of a market event names order `key` (as the order itself, or as
/// a match's request or proposal).
pub fn names_order(data: &serde_json::Value, key: &str) -> bool {
    ["_key", "key", "request_key", "proposal_key"]
        .iter()
        .any(|f| data.get(*f).and_then(|v| v.as_str()) == Some(key))
}

impl crate::client::MarketClient {
    /// Waits for order `key` of `side` to change status, for at most `timeout`, and
    /// answers it as it is then. Listens on the live stream of the order's statement
    /// (reconnecting with the last id when the stream drops) and reads the order again
    /// whenever an event names it.
    pub async fn wait_for_change(
        &self,
        side: crate::domain::Side,
        key: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let before = self.get_order(side, key).await?;
        let status = |o: &serde_json::Value| o["status"].as_str().unwrap_or("").to_owned();
        let was = status(&before);
        let stmt = before["statement_key"].as_str().map(str::to_owned);
        let mut last: Option<String> = None;
        loop {
            let opened =
                tokio::time::timeout_at(deadline, self.events(stmt.as_deref(), last.as_deref()))
                    .await;
            let mut stream = match opened {
                Err(_) => break,
                Ok(s) => s?,
            };
            // Anything that happened before the stream opened.
            let now = self.get_order(side, key).await?;
            if status(&now) != was {
                return Ok(now);
            }
            loop {
                let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                    Err(_) => break,
                    Ok(n) => n,
                };
                match next {
                    Ok(Some(e)) => {
                        let resync = e.event == "reset" || e.event == "lagged";
                        if resync || e.json().is_ok_and(|d| names_order(&d, key)) {
                            let now = self.get_order(side, key).await?;
                            if status(&now) != was {
                                return Ok(now);
                            }
                        }
                    }
                    // The stream ended or broke: open it again where it stopped.
                    Ok(None) | Err(_) => break,
                }
            }
            last = stream.last_id().map(str::to_owned);
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(ClientError::TimedOut(format!(
            "{} {key} did not change within {} s (still {was})",
            side.as_str(),
            timeout.as_secs()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let wire = "retry: 1000\nevent: hello\ndata: {\"a\":1}\n\n: ping\n\nid: 1-0/5/7\r\nevent: order\r\ndata: x\r\ndata: y\r\n\r\ndata:z\n\n";
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for b in wire.as_bytes().chunks(3) {
            buf.extend_from_slice(b);
            got.extend(take_events(&mut buf));
        }
        assert_eq!(
            got,
            vec![
                SseEvent {
                    id: None,
                    event: "hello".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: Some("1-0/5/7".into()),
                    event: "order".into(),
                    data: "x\ny".into()
                },
                SseEvent {
                    id: None,
                    event: "message".into(),
                    data: "z".into()
                },
            ]
        );
        assert!(buf.is_empty());
    }
}
