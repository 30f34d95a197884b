//! Search inside terminal recordings: `GET /api/v1/recordings/search`.

use serde::{Deserialize, Serialize};

use crate::Recording;

/// Longest search text the gateway takes, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// Most recordings one page answers with.
pub const MAX_RESULTS: u32 = 100;

/// One page of `GET /api/v1/recordings/search?q=TEXT[&limit=N][&cursor=C]`:
/// recordings (newest first) where TEXT was printed or typed, each with
/// where.
///
/// TEXT matches as whole words, ignoring ASCII case and how much
/// whitespace or which line breaks separate its words (`grep -iwF`), in
/// the recording's text with terminal escape sequences removed. A page may
/// hold fewer than `limit` results and still have a `next_cursor`: the
/// gateway reads a bounded number of candidate recordings per request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingSearch {
    pub results: Vec<RecordingHit>,
    /// Pass as `cursor` for the next page; `None`: nothing more to search.
    pub next_cursor: Option<String>,
    /// Terminal recordings the caller may see that are not searchable
    /// yet: sessions still running, or ended seconds ago and waiting for
    /// the index.
    pub not_indexed: u64,
}

/// A recording where the text was found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingHit {
    pub recording: Recording,
    /// The first matches, in time order.
    pub matches: Vec<SearchMatch>,
    /// There are more matches than listed.
    pub more: bool,
}

/// One place the text was found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchMatch {
    /// Seconds into the recording when the text was complete on the
    /// screen (output) or typed (input): the player's position to seek to.
    pub offset_secs: f64,
    pub stream: SearchStream,
    /// The match with some text around it, on one line.
    pub snippet: String,
}

/// Where a match is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SearchStream {
    /// What the endpoint printed (a shell's echo of a typed command too).
    Output,
    /// Keystrokes (recorded when the site records them).
    Input,
}
