//! `jg support pin ID --group G`: offers the customer to make their
//! machine an enrolled endpoint of `G` (pin as unattended). With `--wait`,
//! follows the support events until the outcome: the gateway tells it as
//! a system line of the session's chat.

use std::time::Duration;

use anyhow::{Context, bail};
use jumpgate_api_types::support::SupportEvent;
use jumpgate_client::Client;

/// How the gateway's chat line of each outcome starts.
const INSTALLED: &str = "Permanent remote access installed";
const NOT_INSTALLED: &str = "Permanent remote access was not installed";

/// Longest wait for the outcome: the customer's answer (2 min) and the
/// install, within the enrollment token's 10 minutes.
const PATIENCE: Duration = Duration::from_secs(660);

pub(crate) async fn run(client: &Client, id: &str, group: &str, wait: bool) -> anyhow::Result<i32> {
    // Subscribed before the offer: the outcome cannot slip in between.
    let events = if wait {
        Some(
            client
                .support_events()
                .await
                .context("following the support events")?,
        )
    } else {
        None
    };
    client
        .pin_support(id, group)
        .await
        .with_context(|| format!("offering permanent access on {id}"))?;
    outln!("Offered; the customer answers in their window (group {group}).")?;
    let Some(mut events) = events else {
        return Ok(0);
    };
    let outcome = tokio::time::timeout(PATIENCE, async {
        while let Some(e) = events.next().await? {
            if let SupportEvent::Chat { id: of, line } = e
                && of == id
                && line.from_kind == "system"
            {
                if line.text.starts_with(INSTALLED) {
                    return Ok(Some((true, line.text)));
                }
                if line.text.starts_with(NOT_INSTALLED) {
                    return Ok(Some((false, line.text)));
                }
            }
        }
        Ok::<_, jumpgate_client::ClientError>(None)
    })
    .await;
    match outcome {
        Ok(Ok(Some((ok, text)))) => {
            outln!("{text}")?;
            Ok(if ok { 0 } else { 1 })
        }
        Ok(Ok(None)) => bail!("the gateway closed the event stream before the outcome"),
        Ok(Err(e)) => Err(e).context("following the support events"),
        Err(_) => bail!("no outcome within {} s", PATIENCE.as_secs()),
    }
}
