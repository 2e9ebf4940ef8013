//! Undoing byte escapes written as a marker and a fixed number of digits: `%hh` in gRPC
//! messages (percent-encoding), `\ooo` in /proc/self/mountinfo (the kernel's octal escapes).

/// `input` with every `marker` followed by `digits` digits in `radix` replaced by the byte they
/// name; anything else (a marker without valid digits included) is kept as it is, and bytes that
/// are not UTF-8 afterwards become U+FFFD.
#[must_use]
pub fn unescape(input: &str, marker: u8, digits: usize, radix: u32) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == marker
            && let Some(b) = input
                .get(i + 1..=i + digits)
                .and_then(|d| u8::from_str_radix(d, radix).ok())
        {
            out.push(b);
            i += 1 + digits;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn decodes_whole_escapes_and_keeps_the_rest() {
        assert_eq!(unescape("a%20b%2", b'%', 2, 16), "a b%2");
        assert_eq!(unescape("/mnt/a\\040b\\x", b'\\', 3, 8), "/mnt/a b\\x");
    }
}
