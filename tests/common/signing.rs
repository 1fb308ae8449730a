//! OpenPGP test keys made on the spot with rPGP (the crate vnode verifies with): a key signs
//! checksum files clear-signed (Fedora's form) or detached (Ubuntu's and Debian's).

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, DetachedSignature, EncryptionCaps, KeyType,
    SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey, SubkeyParamsBuilder, SubpacketConfig,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Subpacket, SubpacketData};
use pgp::types::{Duration, KeyDetails, Password, Timestamp};

const DAY: u32 = 86_400;

pub struct TestKey {
    secret: SignedSecretKey,
}

impl TestKey {
    /// A fresh Ed25519 key that can sign, with one user id.
    pub fn generate(user_id: &str) -> TestKey {
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .can_encrypt(EncryptionCaps::None)
            .primary_user_id(user_id.into());
        let secret = params
            .build()
            .expect("key parameters")
            .generate(rand_pgp::thread_rng())
            .expect("key generation");
        TestKey { secret }
    }

    /// A key made ten days ago with a signing subkey; with `expired`, the subkey's binding says
    /// it expired a day after it was made (the primary key itself never expires).
    pub fn with_signing_subkey(user_id: &str, expired: bool) -> TestKey {
        let made = Timestamp::from_secs(Timestamp::now().as_secs() - 10 * DAY);
        let subkey = SubkeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_sign(true)
            .created_at(made)
            .build()
            .expect("subkey parameters");
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(false)
            .can_encrypt(EncryptionCaps::None)
            .created_at(made)
            .primary_user_id(user_id.into())
            .subkeys(vec![subkey]);
        let mut secret = params
            .build()
            .expect("key parameters")
            .generate(rand_pgp::thread_rng())
            .expect("key generation");
        if expired {
            let sub = &secret.secret_subkeys[0];
            let mut config = sub.signatures[0].config().expect("a v4 binding").clone();
            config.hashed_subpackets.push(
                Subpacket::regular(SubpacketData::KeyExpirationTime(Duration::from_secs(DAY)))
                    .expect("subpacket"),
            );
            let binding = config
                .sign_subkey_binding(
                    &secret.primary_key,
                    secret.primary_key.public_key(),
                    &Password::empty(),
                    sub.key.public_key(),
                )
                .expect("binding signature");
            secret.secret_subkeys[0].signatures = vec![binding];
        }
        TestKey { secret }
    }

    /// A detached signature over `data` by the (first) subkey.
    pub fn detached_by_subkey(&self, data: &[u8]) -> Vec<u8> {
        armored_detached(&self.secret.secret_subkeys[0].key, data)
    }

    /// A detached signature over `data` by the primary key whose hashed area names the issuer
    /// but holds no creation time (RFC 9580 requires one).
    pub fn detached_without_creation_time(&self, data: &[u8]) -> Vec<u8> {
        let key = &self.secret.primary_key;
        let subpackets = SubpacketConfig::UserDefined {
            hashed: vec![
                Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint()))
                    .expect("subpacket"),
            ],
            unhashed: vec![
                Subpacket::regular(SubpacketData::IssuerKeyId(key.legacy_key_id()))
                    .expect("subpacket"),
            ],
        };
        DetachedSignature::sign_binary_data_with_subpackets(
            rand_pgp::thread_rng(),
            key,
            &Password::empty(),
            HashAlgorithm::Sha256,
            data,
            subpackets,
        )
        .expect("sign")
        .to_armored_bytes(ArmorOptions::default())
        .expect("armor")
    }

    /// Uppercase hex, as vnode prints it.
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.secret.fingerprint())
    }

    /// The public key, armored, as a distribution publishes it.
    pub fn public_armored(&self) -> String {
        SignedPublicKey::from(self.secret.clone())
            .to_armored_string(ArmorOptions::default())
            .expect("armor")
    }

    /// `text` as an OpenPGP clear-signed document.
    pub fn clear_sign(&self, text: &str) -> String {
        CleartextSignedMessage::sign(
            rand_pgp::thread_rng(),
            text,
            &self.secret.primary_key,
            &Password::empty(),
        )
        .expect("clear-sign")
        .to_armored_string(ArmorOptions::default())
        .expect("armor")
    }

    /// A detached binary signature over `data`, armored (as Ubuntu's SHA256SUMS.gpg is).
    pub fn detached(&self, data: &[u8]) -> Vec<u8> {
        armored_detached(&self.secret.primary_key, data)
    }
}

/// A detached binary signature over `data` by `key`, armored.
fn armored_detached(key: &impl pgp::types::SigningKey, data: &[u8]) -> Vec<u8> {
    DetachedSignature::sign_binary_data(
        rand_pgp::thread_rng(),
        key,
        &Password::empty(),
        HashAlgorithm::Sha256,
        data,
    )
    .expect("sign")
    .to_armored_bytes(ArmorOptions::default())
    .expect("armor")
}
