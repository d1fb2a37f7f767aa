//! The `nimbus` command: `serve` runs the cloud, `status` asks a running one
//! for its health, `reset` empties it, `state` saves or loads all of it, `bench` measures any AWS endpoint, `wire` exposes the codec
//! to the protocol test-suite. This file only parses the command line and
//! hands over; each command lives in its own module.

mod alarm_actions;
mod clock;
mod console;
mod datadir;
mod edge;
mod events;
mod flags;
mod health;
mod imds;
mod init;
mod log;
mod reset;
mod serve;
mod state;
mod trim;

use clap::{Parser, Subcommand};

/// glibc's malloc spent a fifth of the server's CPU under load (arena locks between
/// worker threads) and kept freed queue memory; mimalloc does neither.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nimbus",
    version,
    about = "An AWS-compatible cloud on one machine, in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the cloud (all services on one port).
    Serve(serve::ServeArgs),
    /// Ask a running nimbus for its health.
    Status(health::StatusArgs),
    /// Remove every resource of every service of a running nimbus (as test suites do between tests).
    Reset(reset::ResetArgs),
    /// Save the whole state of a running nimbus to a file, or load one into it.
    State(state::StateArgs),
    /// Drive an AWS endpoint (nimbus or a peer) with signed requests and report throughput and latency.
    Bench(nimbus_bench::BenchArgs),
    /// Decode requests / encode responses with the model-driven codec (JSON lines on stdin; for protocol tests).
    #[command(hide = true)]
    Wire {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The first process of an EC2 instance (started by `serve`, never by hand).
    #[command(name = "__instance-init", hide = true)]
    InstanceInit {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Status(args) => health::status(args),
        Command::Reset(args) => reset::command(args),
        Command::State(args) => state::command(args),
        Command::Bench(args) => nimbus_bench::run(args),
        Command::Wire { args } => nimbus_wire::tool::main(&args),
        Command::InstanceInit { args } => nimbus_runtime::init::main(&args),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}
