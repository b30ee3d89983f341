//! Completion queue: many producer threads, one consumer (the event loop), and at
//! most one wake-up in flight.
//!
//! Producers push under a short lock and ring the [`Doorbell`] only when they flip
//! `armed` from false to true, so a burst of 20 000 results costs one wake-up. The
//! consumer [`drain`](CompletionQueue::drain)s: it clears the doorbell, disarms and
//! takes a bounded batch under the same lock, so a push that lands after the take
//! always sees `armed == false` and rings again (no lost wake-up; loom-checked in
//! `tests/loom_completion.rs`). If the batch bound left items behind, the drain
//! re-arms and rings itself so the loop gets a turn in between.

use std::collections::VecDeque;

use crate::sync::{lock, Mutex};

/// How a producer wakes the consumer.
pub trait Doorbell: Send + Sync {
    /// Wake the consumer (idempotent until it clears).
    fn ring(&self);
    /// Consume pending rings.
    fn clear(&self);
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    armed: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct CompletionQueue<T, B> {
    state: Mutex<State<T>>,
    bell: B,
}

impl<T, B: Doorbell> CompletionQueue<T, B> {
    /// An empty queue that rings `bell`.
    pub fn new(bell: B) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                armed: false,
            }),
            bell,
        }
    }

    /// The doorbell (e.g. to register its file descriptor with the event loop).
    pub fn bell(&self) -> &B {
        &self.bell
    }

    /// Adds an item; rings if nobody has rung since the last drain.
    pub fn push(&self, item: T) {
        let ring = {
            let mut state = lock(&self.state);
            state.items.push_back(item);
            !std::mem::replace(&mut state.armed, true)
        };
        if ring {
            self.bell.ring();
        }
    }

    /// Adds an item and reports whether the caller must ring; lets a worker defer
    /// the ring until it has released the interpreter.
    #[must_use = "ring the doorbell when this returns true"]
    pub fn push_deferred(&self, item: T) -> bool {
        let mut state = lock(&self.state);
        state.items.push_back(item);
        !std::mem::replace(&mut state.armed, true)
    }

    /// Rings the doorbell (for a caller of [`push_deferred`](Self::push_deferred)).
    pub fn ring(&self) {
        self.bell.ring();
    }

    /// Takes up to `max` items, oldest first.
    pub fn drain(&self, max: usize) -> Vec<T> {
        self.bell.clear();
        let (batch, more) = {
            let mut state = lock(&self.state);
            let take = state.items.len().min(max);
            let batch: Vec<T> = state.items.drain(..take).collect();
            let more = !state.items.is_empty();
            state.armed = more;
            (batch, more)
        };
        if more {
            self.bell.ring();
        }
        batch
    }

    /// Puts items a drain took but did not deliver back at the front, in their order,
    /// and makes sure another drain follows. The consumer calls this when delivering
    /// one item must stop the drain early (the event loop re-raises
    /// `KeyboardInterrupt` and `SystemExit` from a callback): nothing after it is lost.
    pub fn requeue_front<I>(&self, items: I)
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: DoubleEndedIterator,
    {
        let ring = {
            let mut state = lock(&self.state);
            let before = state.items.len();
            for item in items.into_iter().rev() {
                state.items.push_front(item);
            }
            state.items.len() > before && !std::mem::replace(&mut state.armed, true)
        };
        if ring {
            self.bell.ring();
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        lock(&self.state).items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A doorbell backed by a Linux `eventfd` (a pipe elsewhere): a file descriptor an
/// event loop can watch for readability.
#[cfg(not(loom))]
#[derive(Debug)]
pub struct FdDoorbell {
    read_fd: libc::c_int,
    write_fd: libc::c_int,
}

#[cfg(not(loom))]
impl FdDoorbell {
    /// Creates the descriptor(s), non-blocking and close-on-exec.
    ///
    /// # Errors
    /// The OS error if no descriptor could be created.
    pub fn new() -> std::io::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: plain syscall with valid flags.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd >= 0 {
                return Ok(Self {
                    read_fd: fd,
                    write_fd: fd,
                });
            }
        }
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for fd in fds {
            // SAFETY: fcntl on descriptors we just created.
            unsafe {
                libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(Self {
            read_fd: fds[0],
            write_fd: fds[1],
        })
    }

    /// The descriptor that becomes readable when rung.
    #[must_use]
    pub fn read_fd(&self) -> libc::c_int {
        self.read_fd
    }
}

#[cfg(not(loom))]
impl Doorbell for FdDoorbell {
    fn ring(&self) {
        let one: u64 = 1;
        // A full pipe or a saturated eventfd already means "rung": ignore EAGAIN.
        // SAFETY: writing 8 bytes from a live u64 to our own descriptor.
        let _ = unsafe { libc::write(self.write_fd, std::ptr::from_ref(&one).cast(), 8) };
    }

    fn clear(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into a live buffer of the stated length.
            let n = unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) };
            // eventfd returns its whole counter in one read; a pipe may need more.
            if n <= 0 || self.read_fd == self.write_fd {
                break;
            }
        }
    }
}

#[cfg(not(loom))]
impl Drop for FdDoorbell {
    fn drop(&mut self) {
        // SAFETY: we own these descriptors and nobody uses them after drop.
        unsafe {
            libc::close(self.read_fd);
            if self.write_fd != self.read_fd {
                libc::close(self.write_fd);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct CountingBell(AtomicUsize);

    impl Doorbell for CountingBell {
        fn ring(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn clear(&self) {}
    }

    #[test]
    fn a_burst_rings_once_and_a_bounded_drain_rerings() {
        let q = CompletionQueue::new(CountingBell::default());
        for i in 0..10 {
            q.push(i);
        }
        assert_eq!(q.bell().0.load(Ordering::SeqCst), 1);
        assert_eq!(q.drain(4), vec![0, 1, 2, 3]);
        assert_eq!(q.bell().0.load(Ordering::SeqCst), 2, "leftovers re-ring");
        assert_eq!(q.drain(100).len(), 6);
        q.push(99);
        assert_eq!(q.bell().0.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn eventfd_doorbell_becomes_readable() {
        let bell = FdDoorbell::new().unwrap();
        bell.ring();
        bell.ring();
        let mut pfd = libc::pollfd {
            fd: bell.read_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 1);
        bell.clear();
        pfd.revents = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
    }
}
