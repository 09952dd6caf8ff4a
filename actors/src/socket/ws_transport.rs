//! The websocket's bytes: reads frames off the TCP stream and writes the
//! connection actor's output, after the HTTP upgrade handed the stream over.
//!
//! Why not the HTTP server's own websocket path: it keeps the HTTP/1
//! dispatcher's read and write buffers (8 KiB each) for the connection's
//! whole life, twice what an idle chat socket needs in all. Here an idle
//! socket holds no buffer: reads go through one scratch buffer per worker
//! thread and only a frame's unfinished tail is kept; each write's bytes are
//! freed once the kernel took them.

use crate::socket::ws_conn::WsConn;
use actix::AsyncContext;
use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame, Message, ProtocolError};
use actix_web_actors::ws::WebsocketContext;
use bytes::BytesMut;
use bytestring::ByteString;
use futures_util::{Stream, StreamExt};
use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

/// Bytes taken from the kernel per read. A larger frame is gathered over reads.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    // One per worker thread, borrowed only inside a poll (never across an await).
    static READ_SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// Serves one upgraded connection until either side ends it.
///
/// `leftover` is what the client sent after its upgrade request, already read
/// by the HTTP layer. `max_payload` bounds one frame (larger: closed with 1009).
/// A write that makes no progress for `write_stall` ends the connection: the
/// peer stopped reading, and its session is then treated as a broken transport.
pub async fn serve(io: TcpStream, leftover: BytesMut, conn: WsConn, max_payload: usize, write_stall: Duration) {
    let (read, mut write) = io.into_split();
    let frames = FrameReader { io: read, buf: leftover, codec: Codec::new().max_size(max_payload), max_payload, done: false };
    // The context's own input is never fed: frames come through `FrameReader`,
    // which keeps the bound on what is buffered (see its docs).
    let output = WebsocketContext::with_factory(futures_util::stream::pending(), move |ctx| {
        ctx.add_stream(frames);
        conn
    });
    let mut output = std::pin::pin!(output);
    // The actor runs only while its output is polled, so a peer that does not
    // read holds its actor (and so its session's credit) back: backpressure.
    while let Some(chunk) = output.next().await {
        let Ok(chunk) = chunk else { break };
        match tokio::time::timeout(write_stall, write.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "websocket write failed");
                break;
            }
            Err(_) => {
                tracing::info!(stall_secs = write_stall.as_secs(), "websocket peer stopped reading; connection dropped");
                break;
            }
        }
    }
    // Dropping the output stops the actor (it reports the transport gone);
    // dropping the write half shuts the stream down.
}

/// Client frames, decoded as they arrive.
///
/// At most one unfinished frame (up to `max_payload`) and one read's bytes are
/// held: a new read happens only when the buffer holds no whole frame, so a
/// client that sends faster than frames are handled is held back by TCP, not
/// buffered here. The buffer is let go whenever it empties.
struct FrameReader {
    io: OwnedReadHalf,
    buf: BytesMut,
    codec: Codec,
    max_payload: usize,
    done: bool,
}

impl FrameReader {
    fn read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut rb = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    self.buf.extend_from_slice(rb.filled());
                    Poll::Ready(Ok(rb.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    fn fail(&mut self, e: ProtocolError) -> Poll<Option<Result<Message, ProtocolError>>> {
        self.done = true;
        self.buf = BytesMut::new();
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for FrameReader {
    type Item = Result<Message, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            // The codec checks the size only once the whole frame arrived; a
            // header announcing more than the limit must end it before that.
            if announced_len(&this.buf).is_some_and(|n| n > this.max_payload as u64) {
                return this.fail(ProtocolError::Overflow);
            }
            match this.codec.decode(&mut this.buf) {
                Err(e) => return this.fail(e),
                Ok(Some(frame)) => {
                    if this.buf.is_empty() {
                        // The frame's bytes live on in the message; the buffer's spare room need not.
                        this.buf = BytesMut::new();
                    }
                    return match message(frame) {
                        Ok(m) => Poll::Ready(Some(Ok(m))),
                        Err(e) => this.fail(e),
                    };
                }
                Ok(None) => {}
            }
            match this.read(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(ProtocolError::Io(e)),
            }
        }
    }
}

/// The payload length the next frame's header announces, once enough of the header is in.
fn announced_len(buf: &[u8]) -> Option<u64> {
    match buf.get(1)? & 0x7f {
        126 => buf.get(2..4).map(|b| u64::from(u16::from_be_bytes([b[0], b[1]]))),
        127 => buf.get(2..10).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes),
        n => Some(u64::from(n)),
    }
}

fn message(frame: Frame) -> Result<Message, ProtocolError> {
    Ok(match frame {
        Frame::Text(data) => Message::Text(
            ByteString::try_from(data).map_err(|e| ProtocolError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?,
        ),
        Frame::Binary(data) => Message::Binary(data),
        Frame::Ping(p) => Message::Ping(p),
        Frame::Pong(p) => Message::Pong(p),
        Frame::Close(reason) => Message::Close(reason),
        Frame::Continuation(item) => Message::Continuation(item),
    })
}

/// The bytes after the upgrade request, or an empty buffer without their room.
pub fn leftover(read_buf: BytesMut) -> BytesMut {
    if read_buf.is_empty() {
        BytesMut::new()
    } else {
        // A copy the size of the bytes, so the HTTP layer's 8 KiB buffer is freed.
        BytesMut::from(&read_buf[..])
    }
}

#[cfg(test)]
mod tests {
    use super::announced_len;

    #[test]
    fn the_announced_length_is_read_from_each_header_form_once_it_is_complete() {
        assert_eq!(announced_len(&[0x81]), None);
        assert_eq!(announced_len(&[0x81, 0x85]), Some(5));
        assert_eq!(announced_len(&[0x81, 0x80 | 126, 0x01]), None);
        assert_eq!(announced_len(&[0x81, 0x80 | 126, 0x01, 0x00]), Some(256));
        assert_eq!(announced_len(&[0x81, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0]), None);
        assert_eq!(announced_len(&[0x81, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0]), Some(1 << 40));
    }
}
