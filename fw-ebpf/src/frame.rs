//! Bounds-checked access to packet bytes, shared by the XDP and TC programs.
use aya_ebpf::programs::{TcContext, XdpContext};

/// A packet the program can read directly.
pub trait Frame {
    fn start(&self) -> usize;
    fn end(&self) -> usize;

    #[inline(always)]
    fn len(&self) -> usize {
        self.end() - self.start()
    }
}

impl Frame for XdpContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
}

impl Frame for TcContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
}

/// A pointer to a `T` at `off`, or `None` if the packet is shorter.
#[inline(always)]
pub fn ptr_at<T, F: Frame>(f: &F, off: usize) -> Option<*mut T> {
    let start = f.start();
    if start + off + core::mem::size_of::<T>() > f.end() {
        return None;
    }
    Some((start + off) as *mut T)
}

/// Reads a `T` (unaligned) at `off`.
#[inline(always)]
pub fn read<T: Copy, F: Frame>(f: &F, off: usize) -> Option<T> {
    // SAFETY: ptr_at checked size_of::<T>() bytes at `off` against the
    // frame's end; read_unaligned needs no alignment.
    ptr_at::<T, F>(f, off).map(|p| unsafe { core::ptr::read_unaligned(p) })
}

#[inline(always)]
pub fn u8_at<F: Frame>(f: &F, off: usize) -> Option<u8> {
    read::<u8, F>(f, off)
}

/// A big-endian u16 at `off`.
#[inline(always)]
pub fn be16_at<F: Frame>(f: &F, off: usize) -> Option<u16> {
    read::<[u8; 2], F>(f, off).map(u16::from_be_bytes)
}
