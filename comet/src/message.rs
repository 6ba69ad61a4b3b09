//! A published message and its frames.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::transport::{encode_frame, Frame};

/// A message published on a channel.
///
/// # Sharing
/// One `Message` is shared (`Arc`) by the backlog and every subscriber it is
/// handed to. Each frame is encoded on first use and cached, so a broadcast to
/// 10,000 SSE subscribers encodes once and hands out 10,000 `Bytes` handles to
/// the same buffer: nothing is copied per subscriber.
#[derive(Debug)]
pub struct Message {
    channel: Arc<str>,
    id: u64,
    data: Box<str>,
    frames: [OnceLock<Bytes>; Frame::COUNT],
}

impl Message {
    pub fn new(channel: Arc<str>, id: u64, data: Box<str>) -> Message {
        Message {
            channel,
            id,
            data,
            frames: Default::default(),
        }
    }

    /// The id given by the channel: 1, 2, 3 ...
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The channel it was published on.
    pub fn channel(&self) -> &Arc<str> {
        &self.channel
    }

    pub fn data(&self) -> &str {
        &self.data
    }

    /// The encoded `frame`, computed once and shared.
    pub fn frame(&self, frame: Frame) -> Bytes {
        self.frames[frame.index()]
            .get_or_init(|| encode_frame(frame, self.id, &self.data))
            .clone()
    }
}
