//! One-line diagnostics for heap misuse, built on the stack and written with `write(2)`.
//!
//! `format!` allocates and `eprintln!` locks and buffers through std; a malloc can use
//! neither.  `Line` is a fixed buffer that takes strings and hex numbers, and `misuse`
//! prints `arenalloc: <function>(<pointer>): <what is wrong>` and aborts.

use crate::os;

/// A fixed-capacity line being assembled on the stack; overflowing text is dropped.
pub struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    pub const fn new() -> Self {
        Line { buf: [0; 256], len: 0 }
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            match self.buf.get_mut(self.len) {
                Some(slot) => *slot = b,
                None => break,
            }
            self.len += 1;
        }
        self
    }

    pub fn hex(&mut self, v: usize) -> &mut Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.str("0x");
        let mut started = false;
        for shift in (0..16).rev() {
            let d = (v >> (shift * 4)) & 0xf;
            if d != 0 || started || shift == 0 {
                started = true;
                let digit = [DIGITS[d]]; // d < 16: no bounds check can fail
                // SAFETY: an ASCII hex digit.
                self.str(unsafe { core::str::from_utf8_unchecked(&digit) });
            }
        }
        self
    }

    pub fn dec(&mut self, mut v: usize) -> &mut Self {
        // Digits from the least significant into a small buffer (constant divisors: no
        // division that could panic), then out in order.
        let mut digits = [0u8; 20];
        let mut n = digits.len();
        loop {
            n -= 1;
            digits[n] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 || n == 0 {
                break;
            }
        }
        for &d in digits.iter().skip(n) {
            let one = [d];
            // SAFETY: ASCII decimal digits.
            self.str(unsafe { core::str::from_utf8_unchecked(&one) });
        }
        self
    }

    /// `v` in decimal, right-aligned in `width` columns.
    pub fn dec_width(&mut self, v: usize, width: usize) -> &mut Self {
        let mut digits = 1;
        let mut rest = v;
        while rest >= 10 {
            rest /= 10;
            digits += 1;
        }
        for _ in digits..width {
            self.str(" ");
        }
        self.dec(v)
    }

    pub fn write(&mut self) {
        os::write_stderr(self.buf.get(..self.len).unwrap_or(&[]));
    }
}

/// Reports heap misuse in `function` on pointer `p` and aborts: never corrupt silently.
#[cold]
#[inline(never)]
pub fn misuse(function: &str, p: *const u8, what: &str) -> ! {
    let mut line = Line::new();
    line.str("arenalloc: ").str(function).str("(").hex(p as usize).str("): ").str(what).str("\n");
    line.write();
    os::abort()
}

/// Reports a broken internal invariant (a bug in arenalloc, or memory corruption) and aborts.
#[cold]
#[inline(never)]
pub fn fatal(what: &str) -> ! {
    let mut line = Line::new();
    line.str("arenalloc: fatal: ").str(what).str("\n");
    line.write();
    os::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_hex_and_decimal() {
        let mut l = Line::new();
        l.hex(0).str(" ").hex(0xdead_beef).str(" ").dec(0).str(" ").dec(1234567);
        assert_eq!(&l.buf[..l.len], b"0x0 0xdeadbeef 0 1234567");
    }

    #[test]
    fn truncates_instead_of_overflowing() {
        let mut l = Line::new();
        for _ in 0..100 {
            l.str("abcdef");
        }
        assert_eq!(l.len, 256);
    }
}
