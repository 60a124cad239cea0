//! A closed-loop HTTP/1.1 load generator: `--connections` keep-alive connections each send
//! the same POST body back to back for `--seconds` (after a warm-up) and time every answer.
//! Prints one JSON object: requests/s, latency percentiles, non-2xx answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// host:port of the server.
    #[arg(long)]
    target: String,
    #[arg(long, default_value = "/predict")]
    path: String,
    /// File holding the JSON body.
    #[arg(long)]
    body: std::path::PathBuf,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    warmup: u64,
}

/// Sends one request and reads the whole answer; returns the status.
fn exchange(request: &[u8], stream: &mut TcpStream, reader: &mut BufReader<TcpStream>) -> Result<u16> {
    stream.write_all(request)?;
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line.split_whitespace().nth(1).context("no status line")?.parse()?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let body = std::fs::read(&args.body).with_context(|| args.body.display().to_string())?;
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        args.path,
        args.target,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.seconds);
    let results: Vec<Result<(Vec<u32>, usize)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..args.connections)
            .map(|_| {
                let (request, target) = (&request, &args.target);
                scope.spawn(move || -> Result<(Vec<u32>, usize)> {
                    let mut stream = TcpStream::connect(target.as_str())?;
                    stream.set_nodelay(true)?;
                    let mut reader = BufReader::new(stream.try_clone()?);
                    let (mut latencies, mut failures) = (Vec::new(), 0);
                    loop {
                        let sent = Instant::now();
                        if sent >= until {
                            break;
                        }
                        let status = exchange(request, &mut stream, &mut reader)?;
                        if sent >= measure_from {
                            latencies.push(sent.elapsed().as_micros() as u32);
                            failures += usize::from(!(200..300).contains(&status));
                        }
                    }
                    Ok((latencies, failures))
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a worker thread")).collect()
    });
    let (mut latencies, mut failures) = (Vec::new(), 0);
    for result in results {
        let (l, f) = result?;
        latencies.extend(l);
        failures += f;
    }
    if latencies.is_empty() {
        bail!("no request completed");
    }
    latencies.sort_unstable();
    let percentile = |p: f64| f64::from(latencies[((latencies.len() - 1) as f64 * p).round() as usize]) / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "requests": latencies.len(),
            "requests_per_second": latencies.len() as f64 / args.seconds as f64,
            "p50_ms": percentile(0.50),
            "p90_ms": percentile(0.90),
            "p99_ms": percentile(0.99),
            "max_ms": percentile(1.0),
            "non_2xx": failures,
            "connections": args.connections,
            "body_bytes": body.len(),
        })
    );
    Ok(())
}
