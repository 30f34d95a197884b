//! Server-sent event streams (`text/event-stream`): the support queues'
//! and the EPM approval requests' live feeds.

use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;

use crate::{Client, ClientError};

/// Longest event line kept (a snapshot of many items is one line).
const MAX_EVENT: usize = 16 * 1024 * 1024;

/// A live feed of JSON events, one `T` per `data:` line.
#[derive(Debug)]
pub struct EventStream<T> {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> EventStream<T> {
    /// The next event; `None` when the gateway closed the stream. Comment
    /// lines (keep-alives) and event names are skipped: the JSON names its
    /// own type.
    ///
    /// # Errors
    /// The connection broke, an event was over 16 MiB, or its data was not
    /// the expected JSON.
    pub async fn next(&mut self) -> Result<Option<T>, ClientError> {
        loop {
            while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(data) = line.strip_prefix("data:") {
                    let e = serde_json::from_str(data.trim_start()).map_err(|e| {
                        ClientError::Protocol(format!("an event is not the expected JSON: {e}"))
                    })?;
                    return Ok(Some(e));
                }
            }
            if self.buf.len() > MAX_EVENT {
                return Err(ClientError::Protocol("an event is too long".into()));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(ClientError::Protocol(format!(
                        "the event stream broke off: {e}"
                    )));
                }
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

impl Client {
    /// Opens the event stream at `path`.
    ///
    /// # Errors
    /// Refused, or the gateway could not be reached.
    pub async fn event_stream<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<EventStream<T>, ClientError> {
        let req = self
            .builder(http::Method::GET, path)
            .body(Full::new(bytes::Bytes::new()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (res, _) = self.send(req).await?;
        let status = res.status();
        if !status.is_success() {
            let body = Limited::new(res.into_body(), crate::MAX_BODY)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("reading body: {e}")))?
                .to_bytes();
            return Err(crate::api_error(status, &body));
        }
        Ok(EventStream {
            body: res.into_body(),
            buf: Vec::new(),
            _t: std::marker::PhantomData,
        })
    }
}
