//! Ruby's `Marshal.dump` (format 4.8) of the few kinds of values a
//! variant's transformations hold, for Rails' variation digest:
//! `Base64(SHA1(Marshal.dump(transformations)))`, the key a variant record
//! is found by. A digest that differs by one byte from Rails' own makes the
//! app process the variant again on demand, so this follows Ruby's
//! `marshal.c` exactly for what it covers, and refuses the rest.

/// A Ruby value as a variant's transformations hold it.
#[derive(Clone, Debug, PartialEq)]
pub enum Ruby {
    Nil,
    Bool(bool),
    /// A Fixnum: Marshal writes those of up to 32 bits with `i`.
    Int(i32),
    /// A UTF-8 string.
    Str(String),
    Sym(String),
    Array(Vec<Ruby>),
    /// A hash, in insertion order.
    Hash(Vec<(Ruby, Ruby)>),
}

/// `Marshal.dump(value)`.
pub fn dump(value: &Ruby) -> Vec<u8> {
    let mut out = Writer { bytes: vec![4, 8], symbols: Vec::new() };
    out.value(value);
    out.bytes
}

struct Writer {
    bytes: Vec<u8>,
    /// Symbols already written: a repeat is written as a link to its index.
    symbols: Vec<String>,
}

impl Writer {
    fn value(&mut self, value: &Ruby) {
        match value {
            Ruby::Nil => self.bytes.push(b'0'),
            Ruby::Bool(true) => self.bytes.push(b'T'),
            Ruby::Bool(false) => self.bytes.push(b'F'),
            Ruby::Int(n) => {
                self.bytes.push(b'i');
                self.long(i64::from(*n));
            }
            Ruby::Sym(name) => self.symbol(name),
            Ruby::Str(text) => {
                // A string with an encoding is an object with one instance
                // variable, `E`, true for UTF-8.
                self.bytes.push(b'I');
                self.bytes.push(b'"');
                self.bytes_of(text.as_bytes());
                self.long(1);
                self.symbol("E");
                self.bytes.push(b'T');
            }
            Ruby::Array(items) => {
                self.bytes.push(b'[');
                self.long(items.len() as i64);
                items.iter().for_each(|item| self.value(item));
            }
            Ruby::Hash(pairs) => {
                self.bytes.push(b'{');
                self.long(pairs.len() as i64);
                for (key, value) in pairs {
                    self.value(key);
                    self.value(value);
                }
            }
        }
    }

    fn symbol(&mut self, name: &str) {
        match self.symbols.iter().position(|s| s == name) {
            Some(index) => {
                self.bytes.push(b';');
                self.long(index as i64);
            }
            None => {
                self.symbols.push(name.to_string());
                self.bytes.push(b':');
                self.bytes_of(name.as_bytes());
            }
        }
    }

    fn bytes_of(&mut self, bytes: &[u8]) {
        self.long(bytes.len() as i64);
        self.bytes.extend_from_slice(bytes);
    }

    /// `w_long`: small numbers in one byte, others in 1 to 4 bytes, little
    /// endian, after a byte giving their count (negative for negatives).
    fn long(&mut self, n: i64) {
        match n {
            0 => self.bytes.push(0),
            1..=122 => self.bytes.push((n + 5) as u8),
            -123..=-1 => self.bytes.push((n - 5) as u8),
            _ => {
                let mut rest = n;
                let mut written = Vec::new();
                for _ in 0..4 {
                    written.push(rest as u8);
                    rest >>= 8;
                    if rest == 0 || rest == -1 {
                        break;
                    }
                }
                let count = written.len() as i8;
                self.bytes.push(if n < 0 { -count } else { count } as u8);
                self.bytes.extend(written);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Ruby {
        Ruby::Sym(s.into())
    }

    // Each expected dump is what Ruby 3.1 prints for the same value.
    #[test]
    fn dumps_as_ruby_does() {
        assert_eq!(dump(&Ruby::Int(0)), b"\x04\x08i\x00");
        assert_eq!(dump(&Ruby::Int(100)), b"\x04\x08ii");
        assert_eq!(dump(&Ruby::Int(300)), b"\x04\x08i\x02,\x01");
        assert_eq!(dump(&Ruby::Int(-1)), b"\x04\x08i\xfa");
        assert_eq!(dump(&Ruby::Int(-300)), b"\x04\x08i\xfe\xd4\xfe");
        let variation = Ruby::Hash(vec![
            (sym("format"), Ruby::Str("png".into())),
            (sym("resize_to_limit"), Ruby::Array(vec![Ruby::Int(100), Ruby::Int(100)])),
            (sym("saver"), Ruby::Hash(vec![(sym("strip"), Ruby::Bool(true)), (sym("format"), sym("png"))])),
        ]);
        assert_eq!(
            dump(&variation),
            b"\x04\x08{\x08:\x0bformatI\"\x08png\x06:\x06ET:\x14resize_to_limit[\x07ii\
              ii:\x0asaver{\x07:\x0astripT;\x00:\x08png"
        );
    }
}
