//! The client's command line: [`ClientCommand`] and the arguments of each subcommand.
//!
//! Flag spellings follow the original toolchain's scripts (`--proposal_key`, `--eval_time`,
//! with underscores) so its documented command lines work unchanged; kebab-case aliases
//! (`--proposal-key`) are accepted too. Costs are parsed into the market's own exact
//! [`Cost`] while parsing ([`parse_cost`]), so `--cost -1` fails before anything is sent,
//! by the rules the market applies.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use crate::domain::{Cost, CostError};

/// clap value parser for `--cost` (the command line's and the producer daemon's): the
/// exact [`Cost::parse_decimal`]. The message is the reason only, since clap already names
/// the value and the flag: `invalid value '-1' for '--cost <COST>': cost must be greater
/// than 0`.
pub fn parse_cost(text: &str) -> Result<Cost, String> {
    Cost::parse_decimal(text).map_err(|e| match e {
        // The market's "must be a JSON number" means nothing on a command line.
        CostError::NotANumber => "cost must be a decimal number such as 2, 0.5 or 1e3".into(),
        other => other.to_string(),
    })
}

/// The client's subcommands, one per family of market objects.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Sign up, log in, renew the login token.
    #[command(subcommand)]
    User(UserCommand),
    /// Publish and read statements: the circuits that proofs are asked for.
    #[command(subcommand)]
    Statement(StatementCommand),
    /// Requests (bids): ask for a proof of a statement on a public input.
    #[command(subcommand)]
    Request(RequestCommand),
    /// Proposals (asks): offer to produce proofs of a statement.
    #[command(subcommand)]
    Proposal(ProposalCommand),
    /// Push the proof for a match, or fetch a proof.
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Show a statement's order book: open orders by price level.
    Book(BookArgs),
    /// Your wallet: balance, blocked (requests' escrow), deposit, locked (proposals'
    /// collateral).
    Balance,
    /// Move balance into your producer deposit (proposals need collateral from it).
    Deposit(AmountArgs),
    /// Move deposit that no proposal holds back to your balance.
    WithdrawDeposit(AmountArgs),
    /// Operator: credit a user's balance (the token is PROOF_MARKET_ADMIN_TOKEN).
    Credit(CreditArgs),
    /// A statement's market data: today's prices and volume (`info`), its completed
    /// trades' averages (`statistics`) and its latest trades.
    Stats(StatsArgs),
}

/// `stats`
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The statement's key.
    #[arg(long, value_name = "STATEMENT")]
    pub key: String,
    /// How many of the latest trades to show (at most 100).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub trades: u32,
}

/// `deposit` / `withdraw-deposit`
#[derive(Args, Debug)]
pub struct AmountArgs {
    /// Amount in units (up to 6 decimals).
    #[arg(long, value_parser = parse_cost)]
    pub amount: Cost,
}

/// `credit`
#[derive(Args, Debug)]
pub struct CreditArgs {
    /// Whose balance.
    #[arg(long)]
    pub user: String,
    /// Amount in units (up to 6 decimals).
    #[arg(long, value_parser = parse_cost)]
    pub amount: Cost,
}

/// `user ...`
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account.
    Signup(SignupArgs),
    /// Log in and save the token to the auth file.
    Login(LoginArgs),
    /// Exchange the saved token for a fresh one.
    Renew,
}

/// `user signup`
#[derive(Args, Debug)]
pub struct SignupArgs {
    /// User name.
    #[arg(short, long)]
    pub user: String,
    /// Password.
    #[arg(short, long, env = "PROOF_MARKET_PASSWORD", hide_env_values = true)]
    pub passwd: String,
    /// Contact e-mail (left out of the call when absent).
    #[arg(short, long)]
    pub email: Option<String>,
}

/// `user login`
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// User name.
    #[arg(long)]
    pub user: String,
    /// Password.
    #[arg(long, env = "PROOF_MARKET_PASSWORD", hide_env_values = true)]
    pub passwd: String,
}

/// `statement ...`
#[derive(Subcommand, Debug)]
pub enum StatementCommand {
    /// Publish a statement from a JSON file.
    Push(StatementPushArgs),
    /// Show one statement, or all of them (a list leaves definitions out).
    Get(StatementGetArgs),
}

/// `statement push`
#[derive(Args, Debug)]
pub struct StatementPushArgs {
    /// Statement JSON file (name, description, type, definition, ...).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Leave `definition` (the circuit, often megabytes) out of the output.
    #[arg(long)]
    pub brief: bool,
}

/// `statement get`
#[derive(Args, Debug)]
pub struct StatementGetArgs {
    /// Statement key; all statements (without definitions) when absent.
    #[arg(long)]
    pub key: Option<String>,
    /// Leave `definition` (the circuit, often megabytes) out of the output.
    #[arg(long)]
    pub brief: bool,
}

/// Optional timing of an order, in minutes.
#[derive(Args, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderTiming {
    /// Generation time in minutes (a request: the most it accepts; a proposal: what it needs).
    #[arg(
        long = "eval_time",
        visible_alias = "eval-time",
        value_name = "MINUTES",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub eval_time: Option<u32>,
    /// Minutes the order may rest unmatched.
    #[arg(
        long = "wait_period",
        visible_alias = "wait-period",
        value_name = "MINUTES",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub wait_period: Option<u32>,
}

/// Filters of the list form of `request get` / `proposal get`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilterArgs {
    /// Only orders in this status.
    #[arg(long, visible_alias = "request_status", value_parser = ["created", "processing", "completed", "withdrawn"])]
    pub status: Option<String>,
    /// Only orders for this statement key.
    #[arg(
        long,
        visible_alias = "statement_key",
        alias = "statement-key",
        value_name = "STATEMENT"
    )]
    pub statement: Option<String>,
    /// Only orders placed by this user.
    #[arg(long)]
    pub sender: Option<String>,
    /// Most orders to show (market default 100, max 1000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Orders to skip first.
    #[arg(long)]
    pub skipped: Option<u32>,
}

/// `request get` / `proposal get`: one order by key, or a filtered list.
#[derive(Args, Debug)]
pub struct OrderGetArgs {
    /// The order's key; lists orders when absent.
    #[arg(long, conflicts_with_all = ["status", "statement", "sender", "limit", "skipped"])]
    pub key: Option<String>,
    /// Wait until the order's status changes (from the live stream) and show it then.
    #[arg(long, requires = "key")]
    pub wait: bool,
    /// Most seconds `--wait` waits; then it fails.
    #[arg(long, value_name = "S", default_value_t = 600, requires = "wait", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// List filters.
    #[command(flatten)]
    pub filter: OrderFilterArgs,
}

/// An order key (`withdraw`).
#[derive(Args, Debug)]
pub struct OrderKeyArgs {
    /// The order's key.
    #[arg(long)]
    pub key: String,
}

/// `request ...`
#[derive(Subcommand, Debug)]
pub enum RequestCommand {
    /// Place a request for a proof.
    Push(RequestPushArgs),
    /// Show a request (`--key`) or list requests.
    Get(OrderGetArgs),
    /// Withdraw a request that is still `created`.
    Withdraw(OrderKeyArgs),
}

/// `request push`
#[derive(Args, Debug)]
pub struct RequestPushArgs {
    /// Most you pay for the proof.
    #[arg(long, value_parser = parse_cost, allow_negative_numbers = true)]
    pub cost: Cost,
    /// Public input JSON: `[{"field": 5}, ...]` or `{"input": "1\n11"}`.
    #[arg(long, value_name = "INPUT.json")]
    pub file: PathBuf,
    /// The statement's key.
    #[arg(long, value_name = "STATEMENT")]
    pub key: String,
    /// Generation time and wait period.
    #[command(flatten)]
    pub timing: OrderTiming,
}

/// `proposal ...`
#[derive(Subcommand, Debug)]
pub enum ProposalCommand {
    /// Offer to produce proofs of a statement.
    Push(ProposalPushArgs),
    /// Show a proposal (`--key`) or list proposals.
    Get(OrderGetArgs),
    /// Withdraw a proposal that is still `created`.
    Withdraw(OrderKeyArgs),
}

/// `proposal push`
#[derive(Args, Debug)]
pub struct ProposalPushArgs {
    /// Least you take for a proof.
    #[arg(long, value_parser = parse_cost, allow_negative_numbers = true)]
    pub cost: Cost,
    /// The statement's key.
    #[arg(long, value_name = "STATEMENT")]
    pub key: String,
    /// Generation time and wait period.
    #[command(flatten)]
    pub timing: OrderTiming,
}

/// `proof ...`
#[derive(Subcommand, Debug)]
pub enum ProofCommand {
    /// Push the proof for a matched order.
    Push(ProofPushArgs),
    /// Fetch a proof by its key or by its request's key.
    Get(ProofGetArgs),
    /// Re-verify a proof locally: a stored one by key, or a proof file.
    Verify(ProofVerifyArgs),
}

/// `proof verify`: `--proof_key K`, or `--file PROOF --circuit_input STATEMENT.json
/// --public_input INPUT.json`.
#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("what").required(true).multiple(false).args(["proof_key", "file"])
))]
pub struct ProofVerifyArgs {
    /// A proof stored on the market: fetched with its statement and input.
    #[arg(short = 'k', long = "proof_key", visible_alias = "proof-key")]
    pub proof_key: Option<String>,
    /// A proof file (hex text, optional 0x).
    #[arg(short, long, value_name = "PROOF.bin", requires_all = ["circuit_input", "public_input"])]
    pub file: Option<PathBuf>,
    /// With --file: the statement JSON (or a bare .ll IR file).
    #[arg(
        long = "circuit_input",
        visible_alias = "circuit-input",
        value_name = "STATEMENT.json"
    )]
    pub circuit_input: Option<PathBuf>,
    /// With --file: the public input JSON.
    #[arg(
        long = "public_input",
        visible_alias = "public-input",
        value_name = "INPUT.json"
    )]
    pub public_input: Option<PathBuf>,
}

/// `proof push`: at least one of `--proposal_key` / `--request_key`.
#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("order").required(true).multiple(true).args(["proposal_key", "request_key"])
))]
pub struct ProofPushArgs {
    /// The matched proposal.
    #[arg(short, long = "proposal_key", visible_alias = "proposal-key")]
    pub proposal_key: Option<String>,
    /// The matched request.
    #[arg(short, long = "request_key", visible_alias = "request-key")]
    pub request_key: Option<String>,
    /// The proof: hex text (optional 0x) or raw bytes.
    #[arg(short, long, value_name = "PROOF.bin")]
    pub file: PathBuf,
}

/// `proof get`: exactly one of `--proof_key` / `--request_key`.
#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("which").required(true).multiple(false).args(["proof_key", "request_key"])
))]
pub struct ProofGetArgs {
    /// The proof's key.
    #[arg(short = 'k', long = "proof_key", visible_alias = "proof-key")]
    pub proof_key: Option<String>,
    /// The key of the request the proof answers.
    #[arg(short, long = "request_key", visible_alias = "request-key")]
    pub request_key: Option<String>,
    /// Write the proof's hex text here and leave it out of the printed record.
    #[arg(short, long, value_name = "OUT")]
    pub file: Option<PathBuf>,
}

/// `book`
#[derive(Args, Debug)]
pub struct BookArgs {
    /// The statement's key.
    #[arg(long, value_name = "STATEMENT")]
    pub key: String,
}
