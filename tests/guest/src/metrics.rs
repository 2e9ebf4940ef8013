//! Scraping a plugin's Prometheus endpoint the way Prometheus does: one HTTP GET of
//! `/metrics` over a plain TCP connection, the text format parsed into samples.
//!
//! Invariants: no HTTP library (HTTP/1.0 request, so the body ends with the connection; a
//! chunked body is de-chunked anyway); comment and blank lines are skipped; a line that is not
//! `name{labels} value` fails the scrape rather than being dropped.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

/// One sample: metric name, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// The samples of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// The value of `name` whose labels include every pair of `labels`; `None` if absent,
    /// panics if several samples match (the caller must say which).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self
            .0
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(
            matching.len() <= 1,
            "{name} {labels:?} is ambiguous: {matching:?}"
        );
        matching.first().map(|s| s.value)
    }

    /// The sum of every sample of `name` (0 when there is none).
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }
}

/// A `127.0.0.1` address with a port nobody listens on right now.
pub fn free_local_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

/// GETs `http://<address>/metrics` and parses the body; panics on any failure.
pub fn scrape(address: SocketAddr) -> Scrape {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to metrics at {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("send GET");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("read metrics from {address}: {e}"));
    let response = String::from_utf8(response).expect("metrics are UTF-8");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header end in {response:?}"));
    assert!(
        head.starts_with("HTTP/1.") && head.split(' ').nth(1) == Some("200"),
        "metrics at {address} answered {head:?}"
    );
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    parse(&body).unwrap_or_else(|e| panic!("metrics at {address}: {e}\n{body}"))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").expect("CRLF after chunk");
    }
}

/// Parses the Prometheus text format.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut samples = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value in {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("value of {line:?} is not a number"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unclosed labels in {line:?}"))?;
                (
                    name,
                    labels_of(inner).ok_or_else(|| format!("bad labels in {line:?}"))?,
                )
            }
            None => (series, BTreeMap::new()),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(Scrape(samples))
}

/// `k="v",k2="v2"`, values with the format's escapes (`\\`, `\"`, `\n`).
fn labels_of(inner: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = inner.trim_start_matches(',');
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_text_format_and_dechunks() {
        let text = "# HELP carve_vg_free_bytes free\n# TYPE carve_vg_free_bytes gauge\n\
                    carve_vg_free_bytes{vg=\"carvevg\"} 8568963072\n\
                    carve_thin_pool_data_percent{vg=\"carvevg\",pool=\"pool\"} 0.2\n\
                    carve_node_staged_volumes 1\n";
        let scrape = parse(text).unwrap();
        assert_eq!(
            scrape.value("carve_vg_free_bytes", &[("vg", "carvevg")]),
            Some(8_568_963_072.0)
        );
        assert_eq!(
            scrape.value("carve_thin_pool_data_percent", &[("pool", "pool")]),
            Some(0.2)
        );
        assert_eq!(scrape.value("carve_node_staged_volumes", &[]), Some(1.0));
        assert_eq!(scrape.value("carve_volumes", &[]), None);
        assert!(parse("carve_x{vg=\"a\" 1").is_err());
        let odd = parse("carve_e{msg=\"a,b=\\\"c\\\"\",code=\"x\"} 2").unwrap();
        assert_eq!(
            odd.value("carve_e", &[("msg", "a,b=\"c\""), ("code", "x")]),
            Some(2.0)
        );
        assert!(parse("carve_x one").is_err());
        assert_eq!(
            dechunk("5\r\nab\ncd\r\n3\r\nef\n\r\n0\r\n\r\n"),
            "ab\ncdef\n"
        );
    }
}
