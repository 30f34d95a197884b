//! Local stdin as a channel of chunks, read by a dedicated thread.
//!
//! Not `tokio::io::stdin()`: its blocking read cannot be cancelled and would
//! hold up runtime shutdown until the user presses a key. The thread here is
//! simply abandoned; `main` ends the process with `exit`.

use std::io::Read;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Largest chunk read at once (one `Stdin` message).
const CHUNK: usize = 32 * 1024;
/// Chunks in flight: enough to keep the network busy, small enough that a
/// slow endpoint pushes back on the reader.
const DEPTH: usize = 8;

/// Starts the reader. The channel yields chunks, then closes at end of input;
/// a read error is delivered as the last item.
pub(crate) fn spawn_reader() -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(DEPTH);
    let spawned = std::thread::Builder::new()
        .name("jg-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let item = match lock.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        // The receiver then sees this error instead of input.
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Err(e));
        return rx;
    }
    rx
}
