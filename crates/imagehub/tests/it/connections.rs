//! What a client can hold open is bounded: silent and dribbling connections are closed
//! after the header-read timeout, idle keep-alive ones too, a huge request head gets
//! 431, a client that stops sending its upload or stops reading its download is
//! dropped after the stall timeout (the upload keeping no partial chunk), at most
//! `max_connections` are served at once, and slow transfers that make progress are
//! never cut. The timeouts are set to one second here; each test bounds its own
//! waiting with a far longer guard, so a server that never closes fails it.

use std::time::Duration;

use imagehub_testkit::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::registry::{Registry, random_bytes, sha256_digest};

/// Far longer than any timeout under test: only a server that never closes reaches it.
const GUARD: Duration = Duration::from_secs(60);

fn server(configure: impl FnOnce(&mut imagehub_server::config::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.server.header_read_timeout_secs = 1;
        c.server.stall_timeout_secs = 1;
        configure(c);
    })
}

/// Reads until the server closes the connection; what it sent before.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(GUARD, async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the server closes the connection");
    received
}

#[tokio::test]
async fn silent_and_dribbling_connections_are_closed() {
    let server = server(|_| {});
    for (what, sent) in [
        ("silent", &b""[..]),
        ("half a request line", b"GET /v2/ HT"),
        ("a request head that never ends", b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n"),
        ("half the HTTP/2 preface", b"PRI * HTTP/2.0\r\n"),
    ] {
        let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
        stream.write_all(sent).await.expect("send");
        let answer = read_until_closed(&mut stream).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{what}: {answer:?}");
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_response() {
    let server = server(|_| {});
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("send");
    let answer = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        answer.ends_with("ok"),
        "the one response, then the server closed the idle connection: {answer:?}"
    );
}

#[tokio::test]
async fn a_request_head_over_the_limit_gets_431() {
    let server = server(|c| c.server.header_read_timeout_secs = 30);
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200 * 1024));
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(head.as_bytes()).await;
    let answer = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // A head within the limit is served.
    let reply = reqwest::Client::new()
        .get(format!("{}/v2/", server.url()))
        .header("x-big", "a".repeat(32 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn an_upload_whose_client_stops_sending_is_dropped_without_a_partial_chunk() {
    let server = server(|_| {});
    let reg = Registry::at(&server.url());
    let location = reg.begin_upload("conn/stall").await;
    let path = crate::support::registry::location_path(&location);
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send the head");
    stream.write_all(&[7u8; 10]).await.expect("send 10 of the 1000 bytes");
    let answer = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "a stalled body is the client's failure: {answer:?}"
    );
    let status = reg.get(&location).await;
    status.expect_status_in(&[204], "the upload after the stalled chunk");
    assert_eq!(
        status.header("Range").as_deref(),
        Some("0-0"),
        "the 10 bytes of the unfinished chunk were not kept"
    );
}

#[tokio::test]
async fn slow_transfers_that_make_progress_are_never_cut() {
    let server = server(|_| {});
    let reg = Registry::at(&server.url());
    // An upload whose chunks come 400 ms apart, for longer than both timeouts.
    let location = reg.begin_upload("conn/slow").await;
    let parts: Vec<Vec<u8>> = (0..6).map(|i| random_bytes(64 * 1024, i)).collect();
    let whole: Vec<u8> = parts.concat();
    let path = crate::support::registry::location_path(&location);
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send the head");
    for part in &parts {
        stream.write_all(format!("{:x}\r\n", part.len()).as_bytes()).await.expect("chunk size");
        stream.write_all(part).await.expect("chunk");
        stream.write_all(b"\r\n").await.expect("chunk end");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    stream.write_all(b"0\r\n\r\n").await.expect("last chunk");
    let answer = String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 202"), "a slow upload is accepted: {answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains(&format!("range: 0-{}", whole.len() - 1)),
        "all of it was kept: {answer:?}"
    );
    let digest = sha256_digest(&whole);
    reg.put_upload(&location, &digest, b"")
        .await
        .expect_status_in(&[201], "finish the slow upload");

    // A download read 64 KiB at a time, 300 ms apart, for longer than the stall timeout.
    let mut response = reqwest::Client::new()
        .get(reg.url(&format!("/v2/conn/slow/blobs/{digest}")))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    while let Some(chunk) = tokio::time::timeout(GUARD, response.chunk())
        .await
        .expect("next chunk")
        .expect("the download goes on")
    {
        received.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(received, whole, "the slow download is whole");
}

#[tokio::test]
async fn a_download_whose_client_stops_reading_is_dropped() {
    let server = server(|_| {});
    let reg = Registry::at(&server.url());
    // Larger than what the kernel buffers on both sides of a loopback connection.
    let blob = random_bytes(64 << 20, 42);
    let digest = reg.push_blob("conn/big", &blob).await;
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let request = format!("GET /v2/conn/big/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    // The client that stops reading: nothing is read for five stall timeouts.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let received = read_until_closed(&mut stream).await;
    assert!(
        received.len() < blob.len(),
        "the server gave up on the stalled client ({} of {} bytes sent)",
        received.len(),
        blob.len()
    );
}

#[tokio::test]
async fn no_more_than_max_connections_are_served_at_once() {
    let server = server(|c| c.server.max_connections = 3);
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.addr()).await.expect("connect"));
    }
    // The fourth connection waits in the backlog until a silent one is closed.
    let mut fourth = TcpStream::connect(server.addr()).await.expect("connect");
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let answer = String::from_utf8_lossy(&read_until_closed(&mut fourth).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    // It was served only after the server had closed one of the first three.
    let mut buf = [0u8; 1];
    let closed = silent.iter().filter(|s| matches!(s.try_read(&mut buf), Ok(0))).count();
    assert!(closed >= 1, "the fourth connection was served while three others were still open");
}
