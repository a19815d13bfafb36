//! Cutting a long message into pieces a channel accepts: on line boundaries where possible,
//! never inside a character. Used for pushes (the outbox sends a long message as several) and
//! for replies longer than a passive reply may be (the rest goes out as posts).

/// Splits `content` into pieces of at most `max_bytes`, on line boundaries where possible and
/// never inside a character.
pub fn split_on_lines(content: &str, max_bytes: usize) -> Vec<String> {
    let max_bytes = max_bytes.max(4); // room for any one UTF-8 character
    let mut parts = Vec::new();
    let mut current = String::new();
    for line in content.split_inclusive('\n') {
        if current.len() + line.len() <= max_bytes {
            current.push_str(line);
            continue;
        }
        if !current.is_empty() {
            parts.push(std::mem::take(&mut current));
        }
        let mut rest = line;
        while rest.len() > max_bytes {
            let mut cut = max_bytes;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            parts.push(rest[..cut].to_owned());
            rest = &rest[cut..];
        }
        current.push_str(rest);
    }
    if !current.is_empty() {
        parts.push(current);
    }
    // A newline that only ended a piece is noise at the end of a message.
    for part in &mut parts {
        let trimmed = part.trim_end_matches('\n').len();
        if trimmed > 0 {
            part.truncate(trimmed);
        }
    }
    parts
}
