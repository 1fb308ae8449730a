//! A small HTTP/1.1 server on 127.0.0.1 for the image tests: serves files from memory, answers
//! `Range: bytes=N-` requests, works as a forward proxy (absolute request targets), and misbehaves
//! on request. One request per connection (`Connection: close`), a thread per connection.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Behaviour {
    Normal,
    /// Announce the whole length, send this many bytes of the body, then close the connection.
    CutAfter(usize),
    /// Flip one byte in the middle of the file.
    Corrupt,
    /// 404 Not Found.
    NotFound,
    /// Always 200 with the whole file, whatever the Range header says.
    IgnoreRange,
    /// Send the body in 16 pieces with this pause after each.
    Slow(Duration),
    /// No `Content-Length`: the body ends when the connection closes.
    NoLength,
}

/// What the server saw.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The request target as sent (absolute when the client used the server as a proxy).
    pub target: String,
    pub path: String,
    pub range: Option<String>,
}

#[derive(Default)]
struct State {
    files: HashMap<String, (Vec<u8>, Behaviour)>,
    /// Paths answered with `302 Found` and this `Location`.
    redirects: HashMap<String, String>,
    log: Vec<Request>,
    active: usize,
    max_active: usize,
}

pub struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, &state);
                });
            }
        });
        Server { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn serve(&self, path: &str, body: Vec<u8>) {
        let mut s = self.state.lock().unwrap();
        s.files.insert(path.to_string(), (body, Behaviour::Normal));
    }

    pub fn behave(&self, path: &str, behaviour: Behaviour) {
        let mut s = self.state.lock().unwrap();
        s.files.get_mut(path).expect("served path").1 = behaviour;
    }

    /// Answers requests for `path` with a `302 Found` to `location`.
    pub fn redirect(&self, path: &str, location: &str) {
        let mut s = self.state.lock().unwrap();
        s.redirects.insert(path.to_string(), location.to_string());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    /// The most bodies that were being sent at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.state.lock().unwrap().max_active
    }
}

fn handle(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    // Proxy requests name the whole URL: http://host[:port]/path.
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/".into(), |i| rest[i..].to_string()),
        None => target.clone(),
    };
    let (file, redirect) = {
        let mut s = state.lock().unwrap();
        s.log.push(Request {
            target: target.clone(),
            path: path.clone(),
            range: range.clone(),
        });
        (s.files.get(&path).cloned(), s.redirects.get(&path).cloned())
    };
    let mut out = stream;
    if let Some(location) = redirect {
        return write!(
            out,
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let Some((mut body, behaviour)) = file.filter(|(_, b)| *b != Behaviour::NotFound) else {
        let msg = b"<html><body>404 Not Found</body></html>";
        write!(
            out,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            msg.len()
        )?;
        return out.write_all(msg);
    };
    if behaviour == Behaviour::Corrupt {
        let mid = body.len() / 2;
        body[mid] ^= 0x01;
    }
    let len = body.len();
    let from = range
        .as_deref()
        .filter(|_| behaviour != Behaviour::IgnoreRange)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (head, part) = match from {
        None => ("HTTP/1.1 200 OK\r\n".to_string(), &body[..]),
        Some(n) if n < len => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {n}-{}/{len}\r\n",
                len - 1
            ),
            &body[n..],
        ),
        Some(_) => {
            return write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    };
    let length = if behaviour == Behaviour::NoLength {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", part.len())
    };
    write!(
        out,
        "{head}Content-Type: application/octet-stream\r\n{length}Accept-Ranges: bytes\r\nConnection: close\r\n\r\n"
    )?;
    {
        let mut s = state.lock().unwrap();
        s.active += 1;
        s.max_active = s.max_active.max(s.active);
    }
    let sent = match behaviour {
        Behaviour::CutAfter(n) => out.write_all(&part[..n.min(part.len())]),
        Behaviour::Slow(pause) => part
            .chunks(part.len().div_ceil(16).max(1))
            .try_for_each(|c| {
                out.write_all(c)?;
                out.flush()?;
                std::thread::sleep(pause);
                Ok(())
            }),
        _ => out.write_all(part),
    };
    state.lock().unwrap().active -= 1;
    sent?;
    out.flush()?;
    let _ = out.shutdown(std::net::Shutdown::Write);
    Ok(())
}
