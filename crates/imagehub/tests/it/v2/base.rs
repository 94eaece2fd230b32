//! The `/v2/` version check and what the plain-HTTP port answers to a TLS ClientHello.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use imagehub_testkit::TestServer;

use crate::support::registry::Registry;

#[tokio::test]
async fn api_version_check_is_200_with_distribution_header() {
    let reg = Registry::start();
    let reply = reg.get("/v2/").await;
    reply.expect_status_in(&[200], "GET /v2/");
    assert_eq!(
        reply.header("Docker-Distribution-API-Version").as_deref(),
        Some("registry/2.0"),
        "GET /v2/ announces the API version; {}",
        reply.describe()
    );
}

/// A plausible TLS 1.3 ClientHello record for `localhost`.
fn client_hello() -> Vec<u8> {
    fn u16be(n: usize) -> [u8; 2] {
        u16::try_from(n).expect("fits in u16").to_be_bytes()
    }
    fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend(u16be(body.len()));
        out.extend(body);
        out
    }

    let host = b"localhost";
    let mut server_name = u16be(host.len() + 3).to_vec();
    server_name.push(0); // host_name
    server_name.extend(u16be(host.len()));
    server_name.extend(host);

    let mut key_share = u16be(36).to_vec();
    key_share.extend([0x00, 0x1d]); // x25519
    key_share.extend(u16be(32));
    key_share.extend((0u8..32).map(|i| i.wrapping_mul(7).wrapping_add(3)));

    let mut extensions = Vec::new();
    extensions.extend(extension(0x0000, &server_name));
    extensions.extend(extension(0x000a, &[0x00, 0x04, 0x00, 0x1d, 0x00, 0x17])); // supported_groups
    extensions.extend(extension(0x000d, &[0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01])); // signature_algorithms
    extensions.extend(extension(0x002b, &[0x04, 0x03, 0x04, 0x03, 0x03])); // supported_versions
    extensions.extend(extension(0x0033, &key_share));

    let mut hello = vec![0x03, 0x03]; // legacy_version TLS 1.2
    hello.extend((0u8..32).map(|i| i.wrapping_mul(13).wrapping_add(1))); // random
    hello.push(32); // legacy_session_id
    hello.extend((0u8..32).map(|i| i ^ 0x5a));
    let suites: [u8; 10] = [0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2b, 0xc0, 0x2f];
    hello.extend(u16be(suites.len()));
    hello.extend(suites);
    hello.extend([0x01, 0x00]); // compression: null
    hello.extend(u16be(extensions.len()));
    hello.extend(extensions);

    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend(&u32::try_from(hello.len()).expect("fits").to_be_bytes()[1..]);
    handshake.extend(hello);

    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0 record version
    record.extend(u16be(handshake.len()));
    record.extend(handshake);
    record
}

#[test]
fn tls_client_hello_on_plain_http_port_gets_http_400() {
    let server = TestServer::start();
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    // A guard against a hung server, not a synchronisation device.
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("set read timeout");
    let hello = client_hello();
    assert_eq!(&hello[..3], &[0x16, 0x03, 0x01]);
    stream.write_all(&hello).expect("send ClientHello");

    let expected = b"HTTP/1.0 400";
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while reply.len() < expected.len() {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "reading the answer to a ClientHello: {e}; read so far {:?}",
                String::from_utf8_lossy(&reply)
            ),
        }
    }
    assert!(
        reply.starts_with(expected),
        "answer to a TLS ClientHello on the plain port: {:?}",
        String::from_utf8_lossy(&reply)
    );
}
