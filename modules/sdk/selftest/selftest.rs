//! SDK self-test (Rust): calls every wrapper of modules/sdk/rust/peon.rs once and checks what
//! comes back, so a layout mistake in the SDK fails loudly. Input: a scratch folder the grants
//! allow. Run by modules/check.sh under pyhost with grants it writes itself.
#[path = "../rust/peon.rs"]
mod peon;

use peon::db::Value;
use peon::ErrorCode;

peon::export_run!(selftest);

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("selftest failed: {}", what)) }
}

fn selftest(dir: String) -> Result<String, String> {
    let file = format!("{}/a.txt", dir);
    let e = |e: peon::Error| e.to_string();
    peon::fs::write(&file, b"hello").map_err(e)?;
    peon::fs::append(&file, b" world").map_err(e)?;
    check(peon::fs::read(&file).map_err(e)? == b"hello world", "fs read after write+append")?;
    let names = peon::fs::read_dir(&dir).map_err(e)?;
    check(names.iter().any(|n| n == "a.txt"), "fs read-dir lists a.txt")?;
    peon::fs::remove(&file).map_err(e)?;
    match peon::fs::read(&file) {
        Err(err) => check(err.code == ErrorCode::NotFound && !err.message.is_empty(), "fs read after remove is not-found")?,
        Ok(_) => return Err("selftest failed: removed file still readable".into()),
    }
    match peon::fs::read("/etc/shadow") {
        Err(err) => check(err.code == ErrorCode::Denied, "fs read outside the grant is denied")?,
        Ok(_) => return Err("selftest failed: /etc/shadow readable".into()),
    }

    let values = [Value::Integer(-5), Value::Real(2.5), Value::Text("héllo".into()), Value::Blob(vec![0, 1, 255]), Value::Null];
    let changed = peon::db::execute("t", "INSERT INTO t (i, r, s, b, n) VALUES (?1, ?2, ?3, ?4, ?5)", &values).map_err(e)?;
    check(changed == 1, "db execute changed one row")?;
    let rows = peon::db::query("t", "SELECT i, r, s, b, n FROM t WHERE i = ?1", &[Value::Integer(-5)]).map_err(e)?;
    check(rows.columns == ["i", "r", "s", "b", "n"], "db query columns")?;
    check(rows.rows.len() == 1 && rows.rows[0] == values, "db values round-trip")?;
    match peon::db::execute("t", "DROP TABLE t", &[]) {
        Err(err) => check(err.code == ErrorCode::Denied, "db schema change is denied")?,
        Ok(_) => return Err("selftest failed: DROP TABLE allowed".into()),
    }

    let response = peon::http::send(&peon::http::Request {
        method: "POST".into(),
        url: "https://selftest.example/echo".into(),
        headers: vec![("x-one".into(), "1".into()), ("content-type".into(), "text/plain".into())],
        body: b"ping".to_vec(),
    })
    .map_err(e)?;
    check(response.status == 200, "http status")?;
    check(response.headers.iter().any(|(n, v)| n == "content-type" && v == "application/json"), "http response header")?;
    check(String::from_utf8_lossy(&response.body).contains("\"received\": 4"), "http body")?;

    let out = peon::exec::run("/usr/bin/wc", &["-c"], b"abc").map_err(e)?;
    check(out.code == 0 && String::from_utf8_lossy(&out.stdout).trim() == "3" && out.stderr.is_empty(), "exec wc -c")?;
    match peon::exec::run("/bin/sh", &["-c", "true"], b"") {
        Err(err) => check(err.code == ErrorCode::Denied, "exec of a shell is denied")?,
        Ok(_) => return Err("selftest failed: /bin/sh ran".into()),
    }
    peon::log::log(peon::log::Level::Debug, "selftest done");
    Ok("rust sdk selftest ok".into())
}
