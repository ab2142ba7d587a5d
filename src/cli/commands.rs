//! Carrying out a parsed [`ClientCommand`]: read local files, make the market calls, and
//! produce the text to print.
//!
//! [`execute`] returns the output instead of printing it, so tests can check it and
//! [`crate::cli::run`] decides how to write it. Outputs follow the original toolchain's
//! guide: pretty JSON, with `Proof is pushed` before a pushed proof's record.

use std::path::Path;

use serde_json::Value;

use crate::cli::args::*;
use crate::cli::files::{read_input_file, read_proof_file, read_statement_file, write_text_file};
use crate::cli::ClientOpts;
use crate::client::auth_file::{normalize_url, AuthFile};
use crate::client::{ClientError, ListFilter, MarketClient};
use crate::domain::Side;

/// Runs one command and returns what it prints (without a final newline).
pub async fn execute(opts: &ClientOpts, cmd: ClientCommand) -> Result<String, ClientError> {
    match cmd {
        ClientCommand::User(cmd) => user(opts, cmd).await,
        ClientCommand::Statement(cmd) => statement(&logged_in(opts)?, cmd).await,
        ClientCommand::Request(cmd) => request(&logged_in(opts)?, cmd).await,
        ClientCommand::Proposal(cmd) => proposal(&logged_in(opts)?, cmd).await,
        // A proof file is verified against local files: no market, no login.
        ClientCommand::Proof(ProofCommand::Verify(a)) if a.file.is_some() => {
            pretty(&super::verify::verify(None, a).await?)
        }
        ClientCommand::Proof(cmd) => proof(&logged_in(opts)?, cmd).await,
        ClientCommand::Book(args) => pretty(&logged_in(opts)?.book(&args.key).await?),
        ClientCommand::Stats(a) => {
            pretty(&logged_in(opts)?.statement_stats(&a.key, a.trades).await?)
        }
        ClientCommand::Balance => {
            let auth = AuthFile::load_for(&opts.auth, &opts.url)?;
            let client = MarketClient::new(&opts.url, Some(auth.jwt));
            pretty(&client.balance(&auth.user).await?)
        }
        ClientCommand::Deposit(a) => pretty(&logged_in(opts)?.move_deposit(a.amount, false).await?),
        ClientCommand::WithdrawDeposit(a) => {
            pretty(&logged_in(opts)?.move_deposit(a.amount, true).await?)
        }
        ClientCommand::Credit(a) => {
            let token = std::env::var("PROOF_MARKET_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ClientError::Invalid(
                        "credit is an operator call: set PROOF_MARKET_ADMIN_TOKEN to the market's operator token".into(),
                    )
                })?;
            let client = MarketClient::new(&opts.url, Some(token));
            pretty(&client.credit(&a.user, a.amount).await?)
        }
    }
}

/// A client carrying the token saved for `opts.url`.
fn logged_in(opts: &ClientOpts) -> Result<MarketClient, ClientError> {
    let auth = AuthFile::load_for(&opts.auth, &opts.url)?;
    Ok(MarketClient::new(&opts.url, Some(auth.jwt)))
}

async fn user(opts: &ClientOpts, cmd: UserCommand) -> Result<String, ClientError> {
    match cmd {
        UserCommand::Signup(a) => {
            let client = MarketClient::new(&opts.url, None);
            pretty(
                &client
                    .signup(&a.user, &a.passwd, a.email.as_deref())
                    .await?,
            )
        }
        UserCommand::Login(a) => {
            let client = MarketClient::new(&opts.url, None);
            let jwt = client.login(&a.user, &a.passwd).await?;
            let auth = AuthFile {
                url: normalize_url(&opts.url),
                user: a.user,
                jwt,
            };
            auth.save(&opts.auth)?;
            Ok(format!(
                "logged in as {} (token saved to {})",
                auth.user,
                opts.auth.display()
            ))
        }
        UserCommand::Renew => {
            let mut auth = AuthFile::load_for(&opts.auth, &opts.url)?;
            let client = MarketClient::new(&opts.url, Some(auth.jwt.clone()));
            auth.jwt = client.renew().await?;
            auth.save(&opts.auth)?;
            Ok(format!(
                "token renewed for {} (saved to {})",
                auth.user,
                opts.auth.display()
            ))
        }
    }
}

async fn statement(client: &MarketClient, cmd: StatementCommand) -> Result<String, ClientError> {
    let (answer, brief) = match cmd {
        StatementCommand::Push(a) => {
            let statement = read_statement_file(&a.file)?;
            (client.push_statement(&statement).await?, a.brief)
        }
        StatementCommand::Get(a) => (client.get_statement(a.key.as_deref()).await?, a.brief),
    };
    if brief {
        pretty(&without_definition(answer))
    } else {
        pretty(&answer)
    }
}

async fn request(client: &MarketClient, cmd: RequestCommand) -> Result<String, ClientError> {
    let answer = match cmd {
        RequestCommand::Push(a) => {
            let input = read_input_file(&a.file)?;
            client
                .push_request(
                    &a.key,
                    input,
                    a.cost,
                    a.timing.eval_time,
                    a.timing.wait_period,
                )
                .await?
        }
        RequestCommand::Get(a) => get_orders(client, Side::Request, a).await?,
        RequestCommand::Withdraw(a) => client.withdraw_order(Side::Request, &a.key).await?,
    };
    pretty(&answer)
}

async fn proposal(client: &MarketClient, cmd: ProposalCommand) -> Result<String, ClientError> {
    let answer = match cmd {
        ProposalCommand::Push(a) => {
            client
                .push_proposal(&a.key, a.cost, a.timing.eval_time, a.timing.wait_period)
                .await?
        }
        ProposalCommand::Get(a) => get_orders(client, Side::Proposal, a).await?,
        ProposalCommand::Withdraw(a) => client.withdraw_order(Side::Proposal, &a.key).await?,
    };
    pretty(&answer)
}

/// `request get` / `proposal get`: the order named by `--key`, or the filtered list.
async fn get_orders(
    client: &MarketClient,
    side: Side,
    a: OrderGetArgs,
) -> Result<Value, ClientError> {
    match a.key {
        Some(key) if a.wait => {
            client
                .wait_for_change(side, &key, std::time::Duration::from_secs(a.timeout))
                .await
        }
        Some(key) => client.get_order(side, &key).await,
        None => client.list_orders(side, &list_filter(a.filter)).await,
    }
}

async fn proof(client: &MarketClient, cmd: ProofCommand) -> Result<String, ClientError> {
    match cmd {
        ProofCommand::Push(a) => {
            let proof = read_proof_file(&a.file)?;
            let record = client
                .push_proof(&proof, a.proposal_key.as_deref(), a.request_key.as_deref())
                .await?;
            Ok(format!("Proof is pushed\n{}", pretty(&record)?))
        }
        ProofCommand::Get(a) => {
            let record = match (&a.proof_key, &a.request_key) {
                (Some(key), _) => client.get_proof_by_key(key, true).await?,
                (None, Some(request)) => client.get_proof_by_request(request, true).await?,
                (None, None) => {
                    return Err(ClientError::Invalid(
                        "give --proof_key or --request_key".into(),
                    ))
                }
            };
            match a.file {
                Some(out) => pretty(&save_proof(record, &out)?),
                None => pretty(&record),
            }
        }
        ProofCommand::Verify(a) => pretty(&super::verify::verify(Some(client), a).await?),
    }
}

/// Writes the record's `proof` hex text to `out`; returns the record without it.
fn save_proof(mut record: Value, out: &Path) -> Result<Value, ClientError> {
    let proof = record
        .as_object_mut()
        .and_then(|fields| fields.remove("proof"));
    match proof {
        Some(Value::String(hex)) => {
            write_text_file(out, &hex)?;
            Ok(record)
        }
        _ => Err(ClientError::Invalid(
            "the market's answer holds no proof text to save".into(),
        )),
    }
}

/// Drops `definition` from a statement or from each statement of a list.
fn without_definition(mut answer: Value) -> Value {
    match &mut answer {
        Value::Object(fields) => {
            fields.remove("definition");
        }
        Value::Array(items) => {
            for item in items {
                if let Value::Object(fields) = item {
                    fields.remove("definition");
                }
            }
        }
        _ => {}
    }
    answer
}

fn list_filter(a: OrderFilterArgs) -> ListFilter {
    ListFilter {
        status: a.status,
        sender: a.sender,
        statement_key: a.statement,
        limit: a.limit,
        skipped: a.skipped,
    }
}

fn pretty(value: &Value) -> Result<String, ClientError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| ClientError::Invalid(format!("cannot print the answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::test_server::{answer, TestResult, TestServer};
    use serde_json::json;

    #[test]
    fn brief_drops_definitions() {
        let one = json!({"_key": "1", "definition": {"proving_key": "..."}});
        assert_eq!(without_definition(one), json!({"_key": "1"}));
        let many = json!([{"_key": "1", "definition": 1}, {"_key": "2"}]);
        assert_eq!(
            without_definition(many),
            json!([{"_key": "1"}, {"_key": "2"}])
        );
    }

    #[test]
    fn saving_a_proof_strips_it_from_the_record() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("proof.hex");
        let record = json!({"_key": "9", "proof": "0xabcd"});
        assert_eq!(save_proof(record, &out)?, json!({"_key": "9"}));
        assert_eq!(std::fs::read_to_string(&out)?, "0xabcd");
        assert!(save_proof(json!({"_key": "9"}), &out).is_err());
        Ok(())
    }

    #[tokio::test]
    async fn login_then_proof_get_to_file() -> TestResult {
        let server = TestServer::start(vec![
            answer(200, json!({"jwt": "t1"})),
            answer(
                200,
                json!({"_key": "16158141", "request_key": "16153352", "proof": "0xbeef"}),
            ),
        ])
        .await?;
        let dir = tempfile::tempdir()?;
        let opts = ClientOpts {
            url: server.url.clone(),
            auth: dir.path().join("cfg/auth.json"),
        };
        let login = ClientCommand::User(UserCommand::Login(LoginArgs {
            user: "alice".into(),
            passwd: "pw".into(),
        }));
        let line = execute(&opts, login).await?;
        assert_eq!(
            line,
            format!(
                "logged in as alice (token saved to {})",
                opts.auth.display()
            )
        );
        assert_eq!(AuthFile::load(&opts.auth)?.jwt, "t1");

        let out = dir.path().join("proof.hex");
        let get = ClientCommand::Proof(ProofCommand::Get(ProofGetArgs {
            proof_key: Some("16158141".into()),
            request_key: None,
            file: Some(out.clone()),
        }));
        let printed: Value = serde_json::from_str(&execute(&opts, get).await?)?;
        assert_eq!(
            printed,
            json!({"_key": "16158141", "request_key": "16153352"})
        );
        assert_eq!(std::fs::read_to_string(&out)?, "0xbeef");
        assert_eq!(
            server.seen()[1].header("authorization").as_deref(),
            Some("Bearer t1")
        );
        Ok(())
    }

    #[tokio::test]
    async fn commands_need_a_login() -> TestResult {
        let dir = tempfile::tempdir()?;
        let opts = ClientOpts {
            url: "http://127.0.0.1:1".into(),
            auth: dir.path().join(".proof-market-auth.json"),
        };
        let cmd = ClientCommand::Book(BookArgs {
            key: "32326".into(),
        });
        let err = execute(&opts, cmd).await.err().map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!(
                "not logged in: no token in {} (run 'proof-market user login')",
                opts.auth.display()
            ))
        );
        Ok(())
    }

    #[tokio::test]
    async fn order_commands_pick_their_side() -> TestResult {
        let server = TestServer::start(vec![
            answer(200, json!({"_key": "3"})),
            answer(200, json!([])),
            answer(200, json!({"_key": "4", "status": "withdrawn"})),
        ])
        .await?;
        let dir = tempfile::tempdir()?;
        let opts = ClientOpts {
            url: server.url.clone(),
            auth: dir.path().join("auth.json"),
        };
        AuthFile {
            url: server.url.clone(),
            user: "alice".into(),
            jwt: "t".into(),
        }
        .save(&opts.auth)?;
        let get = |key: Option<&str>, status: Option<&str>| OrderGetArgs {
            key: key.map(str::to_owned),
            wait: false,
            timeout: 600,
            filter: OrderFilterArgs {
                status: status.map(str::to_owned),
                ..OrderFilterArgs::default()
            },
        };
        let cmds = [
            ClientCommand::Proposal(ProposalCommand::Get(get(Some("3"), None))),
            ClientCommand::Request(RequestCommand::Get(get(None, Some("created")))),
            ClientCommand::Proposal(ProposalCommand::Withdraw(OrderKeyArgs { key: "4".into() })),
        ];
        for cmd in cmds {
            execute(&opts, cmd).await?;
        }
        let seen: Vec<(String, String)> = server
            .seen()
            .into_iter()
            .map(|s| (s.method, s.target))
            .collect();
        let q = "q=%5B%7B%22key%22%3A%22status%22%2C%22value%22%3A%22created%22%7D%5D";
        assert_eq!(
            seen,
            [
                ("GET".into(), "/_db/market/v0_0/proposal/3".into()),
                ("GET".into(), format!("/_db/market/v0_0/request/?{q}")),
                ("DELETE".into(), "/_db/market/v0_0/proposal/4".into()),
            ]
        );
        Ok(())
    }

    /// `run`'s future is `Send`, so a daemon may spawn it.
    #[test]
    fn run_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let opts = ClientOpts {
            url: "http://127.0.0.1:1".into(),
            auth: "auth.json".into(),
        };
        let cmd = ClientCommand::Book(BookArgs { key: "1".into() });
        assert_send(&crate::cli::run(&opts, cmd));
    }
}
