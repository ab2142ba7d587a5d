//! Tests of the command line: the original guide's command lines must parse unchanged.
//!
//! They parse through a small wrapper that, like the real binary, flattens [`ClientOpts`]
//! beside the [`ClientCommand`] subcommand.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

use crate::cli::args::*;
use crate::cli::ClientOpts;

#[derive(Parser, Debug)]
#[command(name = "proof-market")]
struct TestCli {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    cmd: ClientCommand,
}

fn parse(line: &str) -> Result<TestCli, clap::Error> {
    TestCli::try_parse_from(std::iter::once("proof-market").chain(line.split_whitespace()))
}

fn ok(line: &str) -> TestCli {
    match parse(line) {
        Ok(cli) => cli,
        Err(e) => panic!("{line}: {e}"),
    }
}

#[test]
fn command_definition_is_consistent() {
    TestCli::command().debug_assert();
}

#[test]
fn defaults_and_global_options() {
    let cli = ok("book --key 32326");
    assert_eq!(cli.opts.url, "http://127.0.0.1:8080");
    assert_eq!(cli.opts.auth, PathBuf::from(".proof-market-auth.json"));
    // Global options may come after the subcommand.
    let cli = ok("request get --key 1 --url http://m:9 --auth /tmp/a.json");
    assert_eq!(cli.opts.url, "http://m:9");
    assert_eq!(cli.opts.auth, PathBuf::from("/tmp/a.json"));
    let cli = ok("--url http://m:9 book --key 32326");
    assert_eq!(cli.opts.url, "http://m:9");
}

#[test]
fn guide_request_push() {
    let cli = ok(
        "request push --cost 2 --file ./example/input/arithmetic_example/input.json --key 32326",
    );
    match cli.cmd {
        ClientCommand::Request(RequestCommand::Push(a)) => {
            assert_eq!(a.cost.micros(), 2_000_000);
            assert_eq!(
                a.file,
                PathBuf::from("./example/input/arithmetic_example/input.json")
            );
            assert_eq!(a.key, "32326");
            assert_eq!(a.timing, OrderTiming::default());
        }
        other => panic!("{other:?}"),
    }
    assert!(parse("request push --cost 2 --file i.json --key 1 --eval_time 0").is_err());
    let cli = ok("request push --cost 2.5 --file i.json --key 1 --eval_time 10 --wait-period 30");
    match cli.cmd {
        ClientCommand::Request(RequestCommand::Push(a)) => {
            assert_eq!(a.timing.eval_time, Some(10));
            assert_eq!(a.timing.wait_period, Some(30));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_costs_fail_while_parsing() {
    let not_a_number = "cost must be a decimal number such as 2, 0.5 or 1e3";
    for (cost, reason) in [
        ("0", "cost must be greater than 0"),
        ("-1", "cost must be greater than 0"),
        ("NaN", not_a_number),
        ("inf", not_a_number),
        ("x", not_a_number),
        ("0.1234567", "cost has more than 6 decimals"),
        ("1e13", "cost must be at most 1e12"),
        ("1.5e-9223372036854775808", "cost has more than 6 decimals"),
    ] {
        let line = format!("proposal push --cost {cost} --key 32326");
        let err = match parse(&line) {
            Ok(cli) => panic!("{line} parsed: {cli:?}"),
            Err(e) => e,
        };
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::ValueValidation,
            "{line}"
        );
        // One line naming the value, the flag and the reason, each once.
        let text = err.to_string();
        assert_eq!(
            text.lines().next().unwrap_or_default(),
            format!("error: invalid value '{cost}' for '--cost <COST>': {reason}"),
            "{line}"
        );
    }
}

#[test]
fn costs_are_exact() {
    for (text, micros) in [
        ("2", 2_000_000),
        ("0.5", 500_000),
        ("1e3", 1_000_000_000),
        ("0.000001", 1),
        (".5", 500_000),
        ("123456789012.123457", 123_456_789_012_123_457),
    ] {
        match ok(&format!("request push --cost {text} --file i.json --key 1")).cmd {
            ClientCommand::Request(RequestCommand::Push(a)) => {
                assert_eq!(a.cost.micros(), micros, "{text}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn guide_request_get_list_and_withdraw() {
    match ok("request get --key 16153352").cmd {
        ClientCommand::Request(RequestCommand::Get(a)) => {
            assert_eq!(a.key.as_deref(), Some("16153352"));
            assert_eq!(a.filter, OrderFilterArgs::default());
        }
        other => panic!("{other:?}"),
    }
    match ok("request get --status created --statement 32326 --limit 5").cmd {
        ClientCommand::Request(RequestCommand::Get(a)) => {
            assert_eq!(a.key, None);
            assert_eq!(a.filter.status.as_deref(), Some("created"));
            assert_eq!(a.filter.statement.as_deref(), Some("32326"));
            assert_eq!(a.filter.limit, Some(5));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse("request get --key 1 --status created").is_err());
    assert!(parse("request get --status nonsense").is_err());
    assert!(parse("request get --request_status processing").is_ok());
    match ok("request withdraw --key 16153352").cmd {
        ClientCommand::Request(RequestCommand::Withdraw(a)) => assert_eq!(a.key, "16153352"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn guide_proposal_push_and_get() {
    match ok("proposal push --cost 2 --key 32326").cmd {
        ClientCommand::Proposal(ProposalCommand::Push(a)) => {
            assert_eq!(a.cost.micros(), 2_000_000);
            assert_eq!(a.key, "32326");
        }
        other => panic!("{other:?}"),
    }
    match ok("proposal get --key 16153923").cmd {
        ClientCommand::Proposal(ProposalCommand::Get(a)) => {
            assert_eq!(a.key.as_deref(), Some("16153923"))
        }
        other => panic!("{other:?}"),
    }
    match ok("proposal get --statement_key 32326 --sender alice").cmd {
        ClientCommand::Proposal(ProposalCommand::Get(a)) => {
            assert_eq!(a.filter.statement.as_deref(), Some("32326"));
            assert_eq!(a.filter.sender.as_deref(), Some("alice"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ok("proposal withdraw --key 16153923").cmd,
        ClientCommand::Proposal(ProposalCommand::Withdraw(_))
    ));
}

#[test]
fn guide_proof_push() {
    match ok("proof push --proposal_key 16153923 --file arithmetic_proof.bin").cmd {
        ClientCommand::Proof(ProofCommand::Push(a)) => {
            assert_eq!(a.proposal_key.as_deref(), Some("16153923"));
            assert_eq!(a.request_key, None);
            assert_eq!(a.file, PathBuf::from("arithmetic_proof.bin"));
        }
        other => panic!("{other:?}"),
    }
    match ok("proof push --proposal-key 1 --request-key 2 --file p.bin").cmd {
        ClientCommand::Proof(ProofCommand::Push(a)) => {
            assert_eq!(a.proposal_key.as_deref(), Some("1"));
            assert_eq!(a.request_key.as_deref(), Some("2"));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse("proof push --request_key 2 --file p.bin").is_ok());
    let err = parse("proof push --file p.bin").err().map(|e| e.kind());
    assert_eq!(err, Some(clap::error::ErrorKind::MissingRequiredArgument));
}

#[test]
fn guide_proof_get_needs_exactly_one_key() {
    match ok("proof get --proof_key 16158141").cmd {
        ClientCommand::Proof(ProofCommand::Get(a)) => {
            assert_eq!(a.proof_key.as_deref(), Some("16158141"));
            assert_eq!(a.request_key, None);
            assert_eq!(a.file, None);
        }
        other => panic!("{other:?}"),
    }
    match ok("proof get --request_key 16153352 --file out.hex").cmd {
        ClientCommand::Proof(ProofCommand::Get(a)) => {
            assert_eq!(a.request_key.as_deref(), Some("16153352"));
            assert_eq!(a.file, Some(PathBuf::from("out.hex")));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse("proof get --proof-key 1").is_ok());
    // The original proof_tools.py short flags.
    match ok("proof get -f tmp_proof.bin -r 458426").cmd {
        ClientCommand::Proof(ProofCommand::Get(a)) => {
            assert_eq!(a.request_key.as_deref(), Some("458426"));
            assert_eq!(a.file, Some(PathBuf::from("tmp_proof.bin")));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse("proof push -p 458426 -f proof.bin").is_ok());
    assert!(parse("proof get --request-key 1").is_ok());
    let both = parse("proof get --proof_key 1 --request_key 2").err();
    assert_eq!(
        both.map(|e| e.kind()),
        Some(clap::error::ErrorKind::ArgumentConflict)
    );
    let none = parse("proof get").err();
    assert_eq!(
        none.map(|e| e.kind()),
        Some(clap::error::ErrorKind::MissingRequiredArgument)
    );
}

#[test]
fn statements_users_and_book() {
    match ok("statement get").cmd {
        ClientCommand::Statement(StatementCommand::Get(a)) => {
            assert_eq!(a.key, None);
            assert!(!a.brief);
        }
        other => panic!("{other:?}"),
    }
    match ok("statement get --key 32326 --brief").cmd {
        ClientCommand::Statement(StatementCommand::Get(a)) => {
            assert_eq!(a.key.as_deref(), Some("32326"));
            assert!(a.brief);
        }
        other => panic!("{other:?}"),
    }
    match ok("statement push --file example/statements/arithmetic.json").cmd {
        ClientCommand::Statement(StatementCommand::Push(a)) => {
            assert_eq!(a.file, PathBuf::from("example/statements/arithmetic.json"))
        }
        other => panic!("{other:?}"),
    }
    match ok("user signup --user alice --passwd s3cret --email a@example.com").cmd {
        ClientCommand::User(UserCommand::Signup(a)) => {
            assert_eq!(
                (a.user.as_str(), a.passwd.as_str(), a.email.as_deref()),
                ("alice", "s3cret", Some("a@example.com"))
            );
        }
        other => panic!("{other:?}"),
    }
    match ok("user login --user alice --passwd s3cret").cmd {
        ClientCommand::User(UserCommand::Login(a)) => assert_eq!(a.user, "alice"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ok("user renew").cmd,
        ClientCommand::User(UserCommand::Renew)
    ));
    match ok("book --key 32326").cmd {
        ClientCommand::Book(a) => assert_eq!(a.key, "32326"),
        other => panic!("{other:?}"),
    }
}
