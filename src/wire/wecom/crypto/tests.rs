//! Unit tests for the crypto module: every case of the shared WeCom vectors, hostile inputs, and
//! round-trip properties over random keys and message lengths.

use super::*;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let doc: Value =
        serde_json::from_str(include_str!("../../../../tests/data/wecom_vectors.json"))
            .expect("vectors.json parses");
    doc["cases"].as_array().expect("cases").clone()
}

fn field<'a>(case: &'a Value, name: &str) -> &'a str {
    case[name].as_str().unwrap_or("")
}

fn random_of(case: &Value) -> [u8; 16] {
    field(case, "random")
        .as_bytes()
        .try_into()
        .expect("16-byte random")
}

#[test]
fn every_vector_decrypts_to_its_plaintext_and_receive_id() {
    let cases = vectors();
    assert_eq!(cases.len(), 7, "all vectors are exercised");
    for case in &cases {
        let name = field(case, "name");
        let key = EncodingAesKey::parse(field(case, "encoding_aes_key")).expect(name);
        let got = decrypt(&key, field(case, "encrypt"), field(case, "receive_id")).expect(name);
        assert_eq!(got.message, field(case, "plaintext"), "{name}");
        assert_eq!(
            got.receive_id,
            field(case, "decrypted_receive_id"),
            "{name}"
        );
    }
}

#[test]
fn every_vector_encrypts_back_to_its_ciphertext_with_its_random() {
    for case in vectors() {
        let name = field(&case, "name");
        let key = EncodingAesKey::parse(field(&case, "encoding_aes_key")).expect(name);
        let ours = encrypt(
            &key,
            random_of(&case),
            field(&case, "plaintext"),
            field(&case, "decrypted_receive_id"),
        )
        .expect(name);
        assert_eq!(ours, field(&case, "encrypt"), "{name}");
    }
}

#[test]
fn every_vector_pad_byte_is_what_we_produce() {
    for case in vectors() {
        let name = field(&case, "name");
        let body =
            20 + field(&case, "plaintext").len() + field(&case, "decrypted_receive_id").len();
        let pad = 32 - body % 32;
        assert_eq!(pad as u64, case["pad_byte"].as_u64().unwrap(), "{name}");
    }
}

#[test]
fn every_signed_vector_verifies_and_signs_identically() {
    let mut signed = 0;
    for case in vectors() {
        let sig = field(&case, "msg_signature");
        if sig.is_empty() {
            continue;
        }
        signed += 1;
        let (token, ts, nonce, enc) = (
            field(&case, "token"),
            field(&case, "timestamp"),
            field(&case, "nonce"),
            field(&case, "encrypt"),
        );
        assert_eq!(
            signature(token, ts, nonce, enc),
            sig,
            "{}",
            field(&case, "name")
        );
        verify_signature(token, ts, nonce, enc, sig).expect("verifies");
        verify_signature(token, ts, nonce, enc, &sig.to_uppercase()).expect("upper-case hex");
        assert_eq!(
            verify_signature(token, ts, "other-nonce", enc, sig),
            Err(CryptoError::SignatureMismatch)
        );
    }
    assert_eq!(signed, 6);
}

#[test]
fn full_block_of_padding_is_accepted_and_produced() {
    let case = vectors()
        .into_iter()
        .find(|c| field(c, "name") == "C1-full-pad-block")
        .unwrap();
    let key = EncodingAesKey::parse(field(&case, "encoding_aes_key")).unwrap();
    let got = decrypt(&key, field(&case, "encrypt"), "").unwrap();
    assert_eq!(got.message, "xxxxxxxxxxxx");
    let raw = STANDARD.decode(field(&case, "encrypt")).unwrap();
    assert_eq!(
        raw.len(),
        64,
        "32 bytes of body + a whole 32-byte pad block"
    );
}

#[test]
fn configured_receive_id_is_checked_and_empty_means_unchecked() {
    let case = &vectors()[0];
    let key = EncodingAesKey::parse(field(case, "encoding_aes_key")).unwrap();
    assert_eq!(
        decrypt(&key, field(case, "encrypt"), "someone-else"),
        Err(CryptoError::ReceiveIdMismatch)
    );
    assert!(decrypt(&key, field(case, "encrypt"), "").is_ok());
}

#[test]
fn keys_decode_leniently_and_bad_keys_are_named() {
    // Trailing bits of this key are non-zero: a strict decoder rejects it.
    assert!(EncodingAesKey::parse("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").is_ok());
    let short = EncodingAesKey::parse("abc").unwrap_err();
    assert!(short.to_string().contains("43"), "{short}");
    let bad = EncodingAesKey::parse(&format!("{}!", "a".repeat(42))).unwrap_err();
    assert!(bad.to_string().contains("'!'"), "{bad}");
    assert_eq!(bad.code(), -40004);
    let debug = format!("{:?}", EncodingAesKey::parse(&"A".repeat(43)).unwrap());
    assert!(!debug.contains("AAAA"), "keys never print: {debug}");
}

#[test]
fn hostile_ciphertexts_give_typed_errors() {
    let key = EncodingAesKey::parse(&"A".repeat(43)).unwrap();
    assert_eq!(decrypt(&key, "%%%", ""), Err(CryptoError::Base64Decode));
    assert_eq!(decrypt(&key, "", ""), Err(CryptoError::CiphertextLength(0)));
    // 15 bytes: not a whole AES block.
    let odd = STANDARD.encode([7u8; 15]);
    assert_eq!(
        decrypt(&key, &odd, ""),
        Err(CryptoError::CiphertextLength(15))
    );
    // Garbage of the right length decrypts to garbage: padding or framing must catch it.
    for n in 1..=8 {
        let garbage = STANDARD.encode(vec![n as u8; 16 * n]);
        let err = decrypt(&key, &garbage, "").unwrap_err();
        assert!(
            matches!(err, CryptoError::BadPadding | CryptoError::BadPlaintext(_)),
            "{err:?}"
        );
    }
}

/// Encrypts a hand-made plaintext frame, to reach the framing checks behind valid padding.
fn encrypt_raw(key: &EncodingAesKey, mut frame: Vec<u8>) -> String {
    let pad = 32 - frame.len() % 32;
    frame.resize(frame.len() + pad, pad as u8);
    let n = frame.len();
    Aes256CbcEnc::inner_iv_init(key.cipher.clone(), &key.iv().into())
        .encrypt_padded_mut::<NoPadding>(&mut frame, n)
        .unwrap();
    STANDARD.encode(frame)
}

#[test]
fn impossible_lengths_and_bad_utf8_are_rejected() {
    let key = EncodingAesKey::parse(&"B".repeat(43)).unwrap();
    let mut frame = vec![0u8; 16];
    frame.extend_from_slice(&1000u32.to_be_bytes());
    frame.extend_from_slice(b"short");
    assert_eq!(
        decrypt(&key, &encrypt_raw(&key, frame), ""),
        Err(CryptoError::BadPlaintext(
            "message length exceeds the buffer"
        ))
    );
    let mut frame = vec![0u8; 16];
    frame.extend_from_slice(&2u32.to_be_bytes());
    frame.extend_from_slice(&[0xff, 0xfe]);
    assert_eq!(
        decrypt(&key, &encrypt_raw(&key, frame), ""),
        Err(CryptoError::BadPlaintext("message is not UTF-8"))
    );
    assert_eq!(
        decrypt(&key, &encrypt_raw(&key, vec![1u8; 10]), ""),
        Err(CryptoError::BadPlaintext("shorter than the 20-byte header"))
    );
}

#[test]
fn signature_rejects_non_hex_and_wrong_lengths() {
    for sig in ["", "zz", "abcd", &"0".repeat(41)] {
        assert_eq!(
            verify_signature("t", "1", "n", "e", sig),
            Err(CryptoError::SignatureMismatch)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_over_random_keys_and_lengths(
        key in any::<[u8; 32]>(),
        random in any::<[u8; 16]>(),
        // Lengths around and at multiples of 32, including where the whole frame is aligned.
        len in prop_oneof![0usize..200, (0usize..40).prop_map(|k| k * 32), (1usize..40).prop_map(|k| k * 32 - 20)],
        receive_id in "[a-z0-9]{0,18}",
        fill in any::<char>(),
    ) {
        let message: String = std::iter::repeat_n(fill, len).collect();
        let key = EncodingAesKey::from_bytes(key);
        let reparsed = EncodingAesKey::parse(key.as_str()).unwrap();
        prop_assert!(reparsed == key);
        let sealed = encrypt(&key, random, &message, &receive_id).unwrap();
        let raw = STANDARD.decode(&sealed).unwrap();
        prop_assert_eq!(raw.len() % 32, 0);
        let opened = decrypt(&key, &sealed, &receive_id).unwrap();
        prop_assert_eq!(opened.message, message);
        prop_assert_eq!(opened.receive_id, receive_id);
    }

    #[test]
    fn decrypt_never_panics_on_arbitrary_input(input in "\\PC{0,300}") {
        let key = EncodingAesKey::parse(&"C".repeat(43)).unwrap();
        let _ = decrypt(&key, &input, "x");
    }

    #[test]
    fn decrypt_never_panics_on_arbitrary_blocks(blocks in proptest::collection::vec(any::<u8>(), 0..256)) {
        let key = EncodingAesKey::parse(&"D".repeat(43)).unwrap();
        let _ = decrypt(&key, &STANDARD.encode(&blocks), "");
    }
}
