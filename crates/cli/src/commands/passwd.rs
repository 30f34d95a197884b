//! `jg passwd`: change your own password. The gateway then revokes all of
//! your sessions, this one included, so the saved session is deleted.

use std::path::Path;

use anyhow::{Context, bail};
use jumpgate_api_types::ChangePassword;

use super::Ctx;
use crate::{input, state};

pub(crate) async fn run(
    ctx: &Ctx,
    new_file: Option<&Path>,
    current_file: Option<&Path>,
) -> anyhow::Result<()> {
    let stdin = Path::new("-");
    if new_file == Some(stdin) && current_file == Some(stdin) {
        bail!("--password-file and --current-password-file cannot both be - (stdin)");
    }
    let client = ctx.authed_client()?;
    let current = input::password(current_file, "Current password: ").await?;
    let new = input::new_password(new_file, "New password: ").await?;
    let req = ChangePassword {
        current_password: current,
        new_password: new,
    };
    client
        .change_password(&req)
        .await
        .context("changing the password")?;
    state::remove(&ctx.state_dir)?;
    outln!("Password changed; log in again")?;
    Ok(())
}
