//! `jumpgate-consent`: the UI child process on its own (the agent will run
//! the same body as `jumpgate agent consent-ui`). Speaks the line protocol
//! of `jumpgate_consent::child` on stdin/stdout; uses `$DISPLAY` and
//! `$XAUTHORITY`.

fn main() -> std::process::ExitCode {
    let stdin = std::io::stdin().lock();
    match jumpgate_consent::child::run_child(stdin, std::io::stdout()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jumpgate-consent: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
