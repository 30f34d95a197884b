//! Session recordings: listing, and the plain asciicast stream.

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full, Limited};
use jumpgate_api_types as api;

use crate::{Client, ClientError, MAX_BODY, api_error, percent_encode};

/// Which recordings to list (all filters optional).
#[derive(Clone, Debug, Default)]
pub struct RecordingFilter<'a> {
    pub endpoint: Option<&'a str>,
    pub user: Option<&'a str>,
    /// RFC 3339.
    pub since: Option<&'a str>,
    pub limit: Option<u32>,
}

/// A recording's asciicast text as it arrives.
#[derive(Debug)]
pub struct CastStream(hyper::body::Incoming);

impl CastStream {
    /// The next piece; `None` at the end. A recording the gateway finds
    /// damaged part-way ends with an error, never a silent short read.
    ///
    /// # Errors
    /// The connection failed or the gateway aborted the stream.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            match self.0.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(ClientError::Protocol(format!(
                        "the recording stream broke off: {e}"
                    )));
                }
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

impl Client {
    /// Recordings, newest first (needs `view-audit`).
    ///
    /// # Errors
    /// The gateway refused or could not be reached.
    pub async fn recordings(
        &self,
        f: &RecordingFilter<'_>,
    ) -> Result<Vec<api::Recording>, ClientError> {
        let limit = f.limit.map(|n| n.to_string());
        let params: Vec<String> = [
            ("endpoint", f.endpoint),
            ("user", f.user),
            ("since", f.since),
            ("limit", limit.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent_encode(v))))
        .collect();
        let path = if params.is_empty() {
            "/api/v1/recordings".to_owned()
        } else {
            format!("/api/v1/recordings?{}", params.join("&"))
        };
        self.get_json(&path).await
    }

    /// Recording `id` as plain asciicast v2, streamed (needs `view-audit`).
    ///
    /// # Errors
    /// Unknown or damaged recording, refusal, or connection failure.
    pub async fn recording_cast(&self, id: &str) -> Result<CastStream, ClientError> {
        let path = format!("/api/v1/recordings/{}/cast", percent_encode(id));
        let req = self
            .builder(Method::GET, &path)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        // The body is streamed to the caller: the connection is not kept.
        let (res, _) = self.send(req).await?;
        let status = res.status();
        if !status.is_success() {
            let body = Limited::new(res.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("reading body: {e}")))?
                .to_bytes();
            return Err(api_error(status, &body));
        }
        Ok(CastStream(res.into_body()))
    }

    /// One page of a search inside terminal recordings (needs
    /// `view-audit`): `text` as whole words, newest recordings first;
    /// `cursor` is a previous page's `next_cursor`.
    ///
    /// # Errors
    /// A refused query (empty, too long, no word), refusal, or connection
    /// failure.
    pub async fn search_recordings(
        &self,
        text: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<api::recording_search::RecordingSearch, ClientError> {
        let mut path = format!("/api/v1/recordings/search?q={}", percent_encode(text));
        if let Some(n) = limit {
            path.push_str(&format!("&limit={n}"));
        }
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={}", percent_encode(c)));
        }
        self.get_json(&path).await
    }
}
