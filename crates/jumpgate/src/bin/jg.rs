//! `jg`, the technician's command-line client.

fn main() {
    jumpgate_cli::main()
}
