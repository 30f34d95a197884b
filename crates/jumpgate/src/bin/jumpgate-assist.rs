//! `jumpgate-assist`: the lean customer client of attended support — the
//! endpoint side of `jumpgate` (`assist`, and `agent` for pinning a machine
//! as an enrolled endpoint) without the gateway, so what a customer
//! downloads is small. The gateway offers this file from the portal when it
//! sits next to the `jumpgate` executable (`[support] assist_binary`).
//!
//! Run without arguments with a download's trailer, it is the support
//! client; `jumpgate-assist agent …` is the same agent as `jumpgate agent …`
//! (a pinned machine runs this very file as its service).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[path = "../endpoint.rs"]
mod endpoint;

#[derive(Parser, Debug)]
#[command(
    name = "jumpgate-assist",
    version,
    about = "Jumpgate's support client: run the file the support portal gave you"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the endpoint agent (dials out to the gateway).
    Agent(endpoint::AgentArgs),
    /// The customer's client of attended support (what running the
    /// downloaded file without arguments does).
    Assist(endpoint::AssistArgs),
}

fn main() -> ExitCode {
    let cli = if endpoint::downloaded() {
        let me = std::env::args_os().next().unwrap_or_default();
        Cli::parse_from([me, "assist".into()])
    } else {
        Cli::parse()
    };
    endpoint::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jumpgate-assist: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Agent(args) => endpoint::agent(args).await,
            Command::Assist(args) => endpoint::assist(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jumpgate-assist: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
