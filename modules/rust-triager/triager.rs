//! rust-triager: a ticket triager written in Rust against the Rust guest SDK (modules/sdk/rust).
//!
//! Input: "DATABASE ENDPOINT_URL", e.g. `tickets https://tickets.example.com/api/triage`.
//! It queries the open tickets (db.query, with a bound parameter), scores each one (priority,
//! age, words such as "outage" or "security"), sorts them into urgent / soon / later, and POSTs
//! a JSON summary to the endpoint (http.send). The answer is the JSON it sent plus the endpoint's
//! status. Capabilities used: db read, http POST, log.
#[path = "../sdk/rust/peon.rs"]
mod peon;

use peon::db::{self, Value};
use peon::http;
use peon::log::{self, Level};

peon::export_run!(triage);

struct Ticket {
    id: i64,
    title: String,
    priority: i64,
    age_days: i64,
}

impl Ticket {
    /// Higher is more urgent.
    fn score(&self) -> i64 {
        let mut score = (5 - self.priority) * 10 + self.age_days.min(30) / 3;
        let title = self.title.to_lowercase();
        for (word, weight) in [("outage", 25), ("security", 20), ("data loss", 25), ("wrong", 5)] {
            if title.contains(word) {
                score += weight;
            }
        }
        score
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn triage(input: String) -> Result<String, String> {
    let mut words = input.split_whitespace();
    let (database, endpoint) = match (words.next(), words.next()) {
        (Some(d), Some(e)) => (d.to_string(), e.to_string()),
        _ => return Err("usage: DATABASE ENDPOINT_URL".to_string()),
    };

    let rows = db::query(
        &database,
        "SELECT id, title, priority, opened_days FROM tickets WHERE status = ?1 ORDER BY id",
        &[Value::Text("open".to_string())],
    )
    .map_err(|e| format!("query failed: {}", e))?;

    let mut tickets = Vec::new();
    for row in rows.rows {
        match row.as_slice() {
            [Value::Integer(id), Value::Text(title), Value::Integer(priority), Value::Integer(age)] => {
                tickets.push(Ticket { id: *id, title: title.clone(), priority: *priority, age_days: *age })
            }
            other => return Err(format!("unexpected row shape: {:?}", other)),
        }
    }
    tickets.sort_by(|a, b| b.score().cmp(&a.score()).then(a.id.cmp(&b.id)));
    log::log(Level::Info, &format!("triaged {} open tickets", tickets.len()));

    let mut buckets: [(&str, Vec<String>); 3] = [("urgent", Vec::new()), ("soon", Vec::new()), ("later", Vec::new())];
    for t in &tickets {
        let bucket = match t.score() {
            s if s >= 50 => 0,
            s if s >= 25 => 1,
            _ => 2,
        };
        buckets[bucket].1.push(format!(
            "{{\"id\":{},\"title\":{},\"score\":{}}}",
            t.id,
            json_string(&t.title),
            t.score()
        ));
    }
    let body = format!(
        "{{\"open\":{},{}}}",
        tickets.len(),
        buckets
            .iter()
            .map(|(name, items)| format!("\"{}\":[{}]", name, items.join(",")))
            .collect::<Vec<_>>()
            .join(",")
    );

    let response = http::send(&http::Request {
        method: "POST".to_string(),
        url: endpoint.clone(),
        headers: vec![("content-type".to_string(), "application/json".to_string())],
        body: body.clone().into_bytes(),
    })
    .map_err(|e| format!("posting the summary to {} failed: {}", endpoint, e))?;
    if !(200..300).contains(&response.status) {
        return Err(format!("{} answered {}", endpoint, response.status));
    }
    Ok(format!("{}\nposted to {}: {}", body, endpoint, response.status))
}
