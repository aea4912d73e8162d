//! A backfill's fire times as spans of equal steps, `[[first, step, count], ...]` (an hourly
//! or daily range is one span; a DST change adds two), and its dates' states as runs of one
//! letter, `"8d2f"`: the token that every run's end rewrites stays a few hundred bytes instead
//! of growing with the dates. Reading refuses more than [`MAX_DATES`](super::MAX_DATES).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<S: Serializer>(times: &[i64], s: S) -> Result<S::Ok, S::Error> {
    let mut spans: Vec<[i64; 3]> = Vec::new();
    for &t in times {
        match spans.last_mut() {
            Some([first, step, count]) if *count == 1 => {
                *step = t - *first;
                *count = 2;
            }
            Some([first, step, count]) if *first + *step * *count == t => *count += 1,
            _ => spans.push([t, 0, 1]),
        }
    }
    spans.serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    let spans = Vec::<[i64; 3]>::deserialize(d)?;
    let mut times = Vec::new();
    for [first, step, count] in spans {
        if count < 1 || times.len() + count as usize > super::MAX_DATES {
            return Err(serde::de::Error::custom(format!(
                "a backfill has 1 to {} times",
                super::MAX_DATES
            )));
        }
        times.extend((0..count).map(|k| first + step * k));
    }
    Ok(times)
}

/// The states, one letter per date, as `<count><letter>` runs.
pub mod letters {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(states: &str, s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::new();
        let bytes = states.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let run = bytes[i..].iter().take_while(|b| **b == bytes[i]).count();
            out.push_str(&run.to_string());
            out.push(bytes[i] as char);
            i += run;
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let text = String::deserialize(d)?;
        let mut out = String::new();
        let mut count = 0usize;
        for c in text.chars() {
            match c {
                '0'..='9' => {
                    count = count * 10 + (c as usize - '0' as usize);
                    if count > super::super::MAX_DATES {
                        return Err(serde::de::Error::custom("too many dates"));
                    }
                }
                'a'..='z' if count > 0 && out.len() + count <= super::super::MAX_DATES => {
                    out.extend(std::iter::repeat_n(c, count));
                    count = 0;
                }
                _ => return Err(serde::de::Error::custom(format!("bad states {text:?}"))),
            }
        }
        Ok(out)
    }
}
