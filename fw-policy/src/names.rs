//! Interface names as fw keeps them: the kernel's syntax, and the
//! fixed-size bytes of META.
use crate::error::{Error, Result};

/// Syntax check of an interface name (what the kernel accepts).
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
        return Err(Error::invalid(
            "interface name",
            name,
            "names are 1-15 characters without `/` or spaces",
        ));
    }
    Ok(())
}

pub fn name_bytes(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    b
}

pub fn name_from_bytes(b: &[u8; 16]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("veth0").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a-very-long-interface").is_err());
        assert_eq!(name_from_bytes(&name_bytes("eth1")), "eth1");
    }
}
