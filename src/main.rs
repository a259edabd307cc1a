//! The `lore` binary: parses the command line and reports errors; the work is in the library.

fn main() {
    match lore::cmd::run() {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    }
}
