//! Building the group robot's passive replies: the plaintext XML for a text or
//! markdown reply, and the encrypted, signed envelope it travels in (§1).

use std::fmt::Write as _;

use crate::domain::Reply;
use crate::wire::wecom::crypto::{CallbackCrypto, CryptoError};

/// Appends `text` as CDATA, splitting any `]]>` inside it so that it cannot end the section.
fn push_cdata(out: &mut String, text: &str) {
    out.push_str("<![CDATA[");
    // Most text has no `]`: skip building a searcher for the rare case.
    if memchr::memchr(b']', text.as_bytes()).is_some() && text.contains("]]>") {
        out.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
    } else {
        out.push_str(text);
    }
    out.push_str("]]>");
}

/// The plaintext XML WeCom expects for `reply`.
pub fn reply_plaintext(reply: &Reply) -> String {
    let mut out = String::with_capacity(256);
    match reply {
        Reply::Text { content, mentioned } => {
            out.push_str("<xml><MsgType>text</MsgType><Text><Content>");
            push_cdata(&mut out, content);
            out.push_str("</Content>");
            if !mentioned.is_empty() {
                out.push_str("<MentionedList>");
                for user in mentioned {
                    out.push_str("<Item>");
                    push_cdata(&mut out, user);
                    out.push_str("</Item>");
                }
                out.push_str("</MentionedList>");
            }
            out.push_str("</Text></xml>");
        }
        Reply::Markdown { content } => {
            out.push_str("<xml><MsgType>markdown</MsgType><Markdown><Content>");
            push_cdata(&mut out, content);
            out.push_str("</Content></Markdown></xml>");
        }
    }
    out
}

/// Encrypts and signs `plaintext` into the response body WeCom expects.
/// `timestamp` must be digits (the handler checks it); `nonce` is echoed as CDATA.
pub fn encrypted_envelope(
    crypto: &CallbackCrypto,
    random: [u8; 16],
    plaintext: &str,
    timestamp: &str,
    nonce: &str,
) -> Result<String, CryptoError> {
    let encrypt = crypto.encrypt(random, plaintext)?;
    let signature = crypto.sign(timestamp, nonce, &encrypt);
    let mut out = String::with_capacity(encrypt.len() + 200);
    out.push_str("<xml><Encrypt>");
    push_cdata(&mut out, &encrypt);
    out.push_str("</Encrypt><MsgSignature>");
    push_cdata(&mut out, &signature);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "</MsgSignature><TimeStamp>{timestamp}</TimeStamp><Nonce>"
    );
    push_cdata(&mut out, nonce);
    out.push_str("</Nonce></xml>");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::wecom::crypto::EncodingAesKey;
    use crate::wire::wecom::robot::xml;

    #[test]
    fn text_reply_carries_mentions_and_survives_cdata_terminators() {
        let xml = reply_plaintext(&Reply::Text {
            content: "a ]]> b".into(),
            mentioned: vec!["zhangsan".into()],
        });
        assert_eq!(
            xml,
            "<xml><MsgType>text</MsgType><Text><Content><![CDATA[a ]]]]><![CDATA[> b]]></Content>\
             <MentionedList><Item><![CDATA[zhangsan]]></Item></MentionedList></Text></xml>"
        );
    }

    #[test]
    fn envelope_decrypts_and_verifies() {
        let key = EncodingAesKey::parse(&"k".repeat(43)).unwrap();
        let crypto = CallbackCrypto::new("tok123", key, "");
        let plain = reply_plaintext(&Reply::Markdown {
            content: "**hi**".into(),
        });
        let body = encrypted_envelope(&crypto, [9; 16], &plain, "1700000000", "n<1>").unwrap();
        let encrypt = xml::parse_envelope(&body).unwrap();
        crypto
            .verify("1700000000", "n<1>", &encrypt, &{
                let start = body.find("<MsgSignature><![CDATA[").unwrap() + 23;
                body[start..start + 40].to_owned()
            })
            .unwrap();
        assert_eq!(crypto.decrypt(&encrypt).unwrap().message, plain);
    }
}
