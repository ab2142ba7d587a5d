//! Settings from a configuration file (`proof-market serve --config FILE`), under the
//! flags and the environment: a flag wins over its environment variable, which wins over
//! the file, which wins over the default.
//!
//! The file is TOML; each key is a long flag name of the command, with `-` or `_`
//! (`listen = "0.0.0.0:8080"`, `lease_ms = 5000`, `json-logs = true`); a value is a
//! string, a number, a boolean or, for a flag that may repeat, an array of those. A key
//! that names no flag, a value of another type, or a file that is not TOML is refused
//! with the key and the reason, and nothing starts.
//!
//! How: the command line is parsed once; every setting of the file whose flag the
//! command line and the environment left at its default becomes `--flag=value`
//! appended to the command line, which is then parsed again, so the file's values pass
//! through the same validation as a flag's.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// Largest configuration file read.
pub const MAX_BYTES: u64 = 1 << 20;

/// Whether `a` is one of `cmd`'s settings: a visible long flag of its own, or one of
/// the global flags named in `globals` (the others are the client's: `--url`).
fn is_setting(a: &clap::Arg, globals: &[&str]) -> bool {
    match a.get_long() {
        None | Some("help" | "version" | "config" | "print-settings") => false,
        Some(long) => !a.is_hide_set() && (!a.is_global_set() || globals.contains(&long)),
    }
}

/// The flags `path` adds to a command line whose (sub)command `cmd` parsed to
/// `matches` (global flags only those named in `globals`); an error names the file,
/// the key and what is wrong.
pub fn extra_args(
    cmd: &Command,
    matches: &ArgMatches,
    path: &Path,
    globals: &[&str],
) -> Result<Vec<OsString>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("config file {shown}: {e}"))?;
    if meta.len() > MAX_BYTES {
        return Err(format!(
            "config file {shown}: larger than {MAX_BYTES} bytes"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("config file {shown}: {e}"))?;
    args_from(cmd, matches, &text, globals).map_err(|e| format!("config file {shown}: {e}"))
}

/// [`extra_args`] of a file's text.
pub fn args_from(
    cmd: &Command,
    matches: &ArgMatches,
    text: &str,
    globals: &[&str],
) -> Result<Vec<OsString>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let msg = e.message().to_owned();
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].lines().count().max(1);
                format!("not TOML (line {line}): {msg}")
            }
            None => format!("not TOML: {msg}"),
        }
    })?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()) && is_setting(a, globals))
            .ok_or_else(|| format!("`{key}` is not a setting of `{}`", cmd.get_name()))?;
        match matches.value_source(arg.get_id().as_str()) {
            // Given on the command line or in the environment: that wins.
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable) => continue,
            _ => {}
        }
        let scalar = |v: &toml::Value| -> Result<String, String> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::Float(f) => Ok(f.to_string()),
                toml::Value::Boolean(b) => Ok(b.to_string()),
                _ => Err(format!(
                    "`{key}` must be a string, a number or a boolean, not {}",
                    v.type_str()
                )),
            }
        };
        match arg.get_action() {
            ArgAction::SetTrue => match value {
                toml::Value::Boolean(true) => out.push(format!("--{flag}").into()),
                toml::Value::Boolean(false) => {}
                other => {
                    return Err(format!(
                        "`{key}` is a switch: true or false, not {}",
                        other.type_str()
                    ))
                }
            },
            ArgAction::Append => {
                let items: Vec<&toml::Value> = match value {
                    toml::Value::Array(a) => a.iter().collect(),
                    v => vec![v],
                };
                for v in items {
                    out.push(format!("--{flag}={}", scalar(v)?).into());
                }
            }
            _ => out.push(format!("--{flag}={}", scalar(value)?).into()),
        }
    }
    Ok(out)
}

/// A setting read only from the environment (a secret: a command line or a config
/// file is more easily seen): variable, default, what.
pub type EnvOnly = (&'static str, &'static str, &'static str);

/// Every setting of `cmd` as a Markdown table (flag and config key, environment
/// variable, default, what), then the environment-only ones: the one table of defaults
/// the operator's guide shows (a test keeps it equal to this output).
pub fn settings_table(cmd: &Command, globals: &[&str], env_only: &[EnvOnly]) -> String {
    let mut out =
        String::from("| flag / config key | environment | default | what |\n|---|---|---|---|\n");
    let cell = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    };
    for a in cmd.get_arguments() {
        let Some(long) = a.get_long() else { continue };
        if !is_setting(a, globals) && !matches!(long, "config" | "print-settings") {
            continue;
        }
        let env = a
            .get_env()
            .map_or("—".to_owned(), |e| format!("`{}`", e.to_string_lossy()));
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        let default = match (a.get_action(), defaults.is_empty()) {
            (ArgAction::SetTrue, _) => "`false`".to_owned(),
            (_, true) => "unset".to_owned(),
            (_, false) => format!("`{}`", defaults.join(",")),
        };
        let help = a
            .get_help()
            .map(|h| cell(&h.to_string()))
            .unwrap_or_default();
        out.push_str(&format!("| `--{long}` | {env} | {default} | {help} |\n"));
    }
    for (var, default, what) in env_only {
        out.push_str(&format!("| — | `{var}` | {default} | {} |\n", cell(what)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Arg;

    fn cmd() -> Command {
        Command::new("serve")
            .arg(Arg::new("config").long("config"))
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .env("PM_CONFIG_TEST_LISTEN")
                    .default_value("127.0.0.1:8080"),
            )
            .arg(
                Arg::new("lease_ms")
                    .long("lease-ms")
                    .value_parser(clap::value_parser!(u64))
                    .default_value("5000"),
            )
            .arg(Arg::new("json").long("json").action(ArgAction::SetTrue))
            .arg(Arg::new("seed").long("seed").action(ArgAction::Append))
    }

    fn extra(argv: &[&str], text: &str) -> Result<Vec<String>, String> {
        let m = cmd()
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        args_from(&cmd(), &m, text, &[])
            .map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect())
    }

    #[test]
    fn file_values_become_flags_under_the_command_line() {
        let text =
            "listen = \"0.0.0.0:9000\"\nlease_ms = 7000\njson = true\nseed = [\"a\", \"b\"]\n";
        let mut got = extra(&["serve"], text).unwrap();
        got.sort();
        assert_eq!(
            got,
            [
                "--json",
                "--lease-ms=7000",
                "--listen=0.0.0.0:9000",
                "--seed=a",
                "--seed=b"
            ]
        );
        // A flag given on the command line wins.
        let got = extra(&["serve", "--lease-ms", "1"], "lease-ms = 7000").unwrap();
        assert!(got.is_empty(), "{got:?}");
        // And the whole line parses with the additions.
        let mut argv = vec!["serve".to_owned()];
        argv.extend(extra(&["serve"], text).unwrap());
        let m = cmd().try_get_matches_from(argv).unwrap();
        assert_eq!(m.get_one::<u64>("lease_ms"), Some(&7000));
        assert!(m.get_flag("json"));
    }

    #[test]
    fn the_settings_table_lists_flags_environment_and_defaults() {
        let t = settings_table(&cmd(), &[], &[("PM_SECRET", "unset", "a | secret")]);
        assert!(
            t.contains("| `--listen` | `PM_CONFIG_TEST_LISTEN` | `127.0.0.1:8080` |"),
            "{t}"
        );
        assert!(t.contains("| `--lease-ms` | — | `5000` |"), "{t}");
        assert!(t.contains("| `--json` | — | `false` |"), "{t}");
        assert!(
            t.contains("| — | `PM_SECRET` | unset | a \\| secret |"),
            "{t}"
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_key_and_reason() {
        let e = extra(&["serve"], "lisen = \"x\"").unwrap_err();
        assert!(e.contains("`lisen` is not a setting"), "{e}");
        let e = extra(&["serve"], "config = \"other.toml\"").unwrap_err();
        assert!(e.contains("not a setting"), "{e}");
        let e = extra(&["serve"], "json = \"yes\"").unwrap_err();
        assert!(e.contains("switch"), "{e}");
        let e = extra(&["serve"], "listen = { a = 1 }").unwrap_err();
        assert!(e.contains("must be a string"), "{e}");
        let e = extra(&["serve"], "listen = \n").unwrap_err();
        assert!(e.contains("not TOML (line 1)"), "{e}");
        // A value of the right kind but out of range fails in the second parse, as a
        // flag would.
        let mut argv = vec!["serve".to_owned()];
        argv.extend(extra(&["serve"], "lease_ms = -3").unwrap());
        assert!(cmd().try_get_matches_from(argv).is_err());
    }
}
