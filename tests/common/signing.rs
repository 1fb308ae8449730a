//! OpenPGP test keys made on the spot with rPGP (the crate vnode verifies with): a key signs
//! checksum files clear-signed (Fedora's form) or detached (Ubuntu's and Debian's).

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, DetachedSignature, EncryptionCaps, KeyType,
    SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{KeyDetails, Password};

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
        DetachedSignature::sign_binary_data(
            rand_pgp::thread_rng(),
            &self.secret.primary_key,
            &Password::empty(),
            HashAlgorithm::Sha256,
            data,
        )
        .expect("sign")
        .to_armored_bytes(ArmorOptions::default())
        .expect("armor")
    }
}
