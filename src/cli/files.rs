//! Local files the client reads and writes: proof files, JSON input/statement files.
//!
//! A proof file from the original toolchain holds the proof as hex text (`0x...`, maybe with
//! a trailing newline); a prover may also write raw bytes. [`proof_hex_from_bytes`] accepts
//! both and always yields `0x` + lowercase hex, the form the market takes. The functions
//! are synchronous: the files are small and the CLI does nothing else while it waits.

use std::path::Path;

use crate::client::auth_file::create_parent_dirs;
use crate::client::ClientError;

/// Turns a proof file's contents into `0x`-prefixed lowercase hex.
///
/// Hex text (optional `0x`/`0X` prefix, any whitespace around or inside) is decoded to check
/// it; anything else counts as a binary proof and its bytes are hex-encoded. Hex digits of
/// odd count are refused rather than guessed at, since they are most likely a cut-off file.
pub fn proof_hex_from_bytes(bytes: &[u8]) -> Result<String, ClientError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ClientError::Invalid("the proof file is empty".into()));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let trimmed = text.trim();
        let body = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
            .unwrap_or(trimmed);
        let digits: String = body.split_whitespace().collect();
        if digits.chars().all(|c| c.is_ascii_hexdigit()) {
            if digits.is_empty() {
                return Err(ClientError::Invalid(
                    "the proof file holds no hex digits".into(),
                ));
            }
            if digits.len() % 2 == 1 {
                return Err(ClientError::Invalid(format!(
                    "the proof file holds an odd number of hex digits ({}); is it cut off?",
                    digits.len()
                )));
            }
            return Ok(format!("0x{}", digits.to_ascii_lowercase()));
        }
    }
    Ok(format!("0x{}", hex::encode(bytes)))
}

/// Reads a proof file (see [`proof_hex_from_bytes`]).
pub fn read_proof_file(path: &Path) -> Result<String, ClientError> {
    let bytes = std::fs::read(path).map_err(|e| ClientError::io("read", path, e))?;
    proof_hex_from_bytes(&bytes).map_err(|e| match e {
        ClientError::Invalid(why) => ClientError::Invalid(format!("{}: {why}", path.display())),
        other => other,
    })
}

/// Reads a JSON file whole.
pub fn read_json_file(path: &Path) -> Result<serde_json::Value, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|e| ClientError::io("read", path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ClientError::Invalid(format!("{} is not valid JSON: {e}", path.display())))
}

/// Reads a request's public input file: `[{"field": 5}, ...]` or `{"input": "1\n11"}`.
///
/// Only the outer shape is checked; the value is sent unchanged and the market checks the
/// field elements.
pub fn read_input_file(path: &Path) -> Result<serde_json::Value, ClientError> {
    let value = read_json_file(path)?;
    if value.is_array() || value.is_object() {
        Ok(value)
    } else {
        Err(ClientError::Invalid(format!(
            "{} must hold an array like [{{\"field\": 5}}] or an object like {{\"input\": \"1\\n11\"}}",
            path.display()
        )))
    }
}

/// Reads a statement file: a JSON object as in the original market's `example/statements/`.
pub fn read_statement_file(path: &Path) -> Result<serde_json::Value, ClientError> {
    let value = read_json_file(path)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ClientError::Invalid(format!(
            "{} must hold a statement object ({{\"name\": ..., \"definition\": ...}})",
            path.display()
        )))
    }
}

/// Writes text to a file, creating its parent directories.
pub fn write_text_file(path: &Path, text: &str) -> Result<(), ClientError> {
    create_parent_dirs(path)?;
    std::fs::write(path, text).map_err(|e| ClientError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(bytes: &[u8]) -> String {
        match proof_hex_from_bytes(bytes) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn hex_text_with_and_without_prefix() {
        assert_eq!(hex_of(b"0xdeadBEEF"), "0xdeadbeef");
        assert_eq!(hex_of(b"0XDEADBEEF"), "0xdeadbeef");
        assert_eq!(hex_of(b"deadbeef"), "0xdeadbeef");
    }

    #[test]
    fn whitespace_and_newlines_are_dropped() {
        assert_eq!(hex_of(b"  0xdead\nbeef\r\n\t"), "0xdeadbeef");
        assert_eq!(hex_of(b"dead beef\n"), "0xdeadbeef");
    }

    #[test]
    fn binary_is_hex_encoded() {
        assert_eq!(hex_of(&[0x00, 0xff, 0x10, 0x80]), "0x00ff1080");
        // Valid UTF-8 that is not hex is binary too.
        assert_eq!(hex_of(b"proof!"), "0x70726f6f6621");
    }

    #[test]
    fn empty_and_odd_files_are_refused() {
        for bad in [&b""[..], b" \n", b"0x", b"0x\n", b"abc"] {
            assert!(proof_hex_from_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_proof_files_from_disk() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let text = dir.path().join("arithmetic_proof.bin");
        std::fs::write(&text, "0x0102ab\n")?;
        assert_eq!(read_proof_file(&text)?, "0x0102ab");
        let bin = dir.path().join("raw.bin");
        std::fs::write(&bin, [1u8, 2, 0xab, 0xfe])?;
        assert_eq!(read_proof_file(&bin)?, "0x0102abfe");
        let missing = dir.path().join("missing.bin");
        let err = read_proof_file(&missing).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("cannot read ") && !e.contains('\n')));
        Ok(())
    }

    #[test]
    fn input_files_keep_their_shape() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let arr = dir.path().join("a.json");
        std::fs::write(&arr, r#"[{"field": 5}, {"field": 11}]"#)?;
        assert_eq!(
            read_input_file(&arr)?,
            serde_json::json!([{"field": 5}, {"field": 11}])
        );
        let obj = dir.path().join("o.json");
        std::fs::write(&obj, r#"{"input": "1\n11"}"#)?;
        assert_eq!(
            read_input_file(&obj)?,
            serde_json::json!({"input": "1\n11"})
        );
        let num = dir.path().join("n.json");
        std::fs::write(&num, "5")?;
        assert!(read_input_file(&num).is_err());
        let broken = dir.path().join("b.json");
        std::fs::write(&broken, "{")?;
        let err = read_input_file(&broken).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("is not valid JSON")));
        Ok(())
    }

    #[test]
    fn reads_the_statement_fixture() -> Result<(), Box<dyn std::error::Error>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/arithmetic-statement-32326.json");
        let statement = read_statement_file(&path)?;
        assert_eq!(statement["type"], "placeholder-zkllvm");
        assert!(statement["definition"]["proving_key"]
            .as_str()
            .is_some_and(|ir| ir.starts_with("; ModuleID")));
        Ok(())
    }

    #[test]
    fn writes_create_parent_dirs() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("a/b/proof.hex");
        write_text_file(&out, "0x01")?;
        assert_eq!(std::fs::read_to_string(&out)?, "0x01");
        Ok(())
    }
}
