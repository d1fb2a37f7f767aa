//! `cargo run -p nimbus-wire --example wire -- decode|encode`: the `nimbus wire`
//! tool without building the whole server, for tests while other crates are in flux.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(nimbus_wire::tool::main(&args));
}
