use super::*;
use num_bigint::BigUint;
use std::vec::Vec;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Real signatures, made with OpenSSL: (modulus, signature) over "abc", e = 65537, with the
/// hash that follows from the size.
const VECTORS: [(&str, &str); 3] = [
    // openssl genrsa 2048; openssl dgst -sha256 -sign on "abc".
    ("99b6c01f45ca4deb0e6b7867e020380756f716f3ff43eb8b63deaced24e4b1880441efa71b2b89f886523eae5fb7eac8576a30270cfdf9eef4e4be90544aac58bde50fb82d4f32ddd2ed2095b5ad0c9e95fe6cd5f020f999b540047c8136839bb7a5f6b49e96aa3e4512b4705cd29b807bec0ebf1ee99370eba3dcf2327b721e9699cc82fbf9b1b41c18e0f82528aaec76942d44ae37334766dab8cd75c12a246be76fb3fa22c66f2d21a932dc6694bebaf63aef06414d17f4b42b22f0a6f167555fbca72caa39bf170e98f3990e01b55761826702fe9f1f658c9f1bf80d7ad7224b30174423bdabfeaafa656ee19984b493c771621bc9d41a52bb126e4f7f7f", "55945fce54f376e7242ff7dd15f97c662b96d17cc3bf50683b948cc802e7aca14f8ca121a6c108f5ecd5efb44d4dc572deea3c5dd81390636e92d30945c65d75358393cbc2efb817b4abc8ecf441438c25bb17b3daca65ab4328a183230af72e0579f25973eabab70f061c32a4024ab4121f20493814872dae26cd0cd676e6bd7b4ba4fc671e400119a2ea3e25527b956209cc374baaec89de044a9b51fb34fd7c1da480529e8f2d777524fc4aa76030b26ca618dc089d4b5b5fdb63c5ba590b913af2392b25e62aa68f293864d7dd7eb981b649a4403f6e3c142ee4bf52dc50c2733ec2c2cd26c739c7f4b20195f78a4ecc959c60c91bae5730505c2b3834eb"),
    // openssl genrsa 3072; openssl dgst -sha384 -sign on "abc".
    ("bb7ea29eb2f2a23dbb02a86e8b4443f753ed3a2239e2e75be703258a1a1b30f44c77e41de2c3310a866f30e6e19fd34d626ada7451429fbc7eb4cae38ee3bc1b8aa79915e0edbee583a037de610135fd0e90ebc52759cff87e1830a16103ca5d0a42192380bc207b4b9dc5e0c7d05e16d863f1025f5f37541f205f717c9fc6cc4d0174278ec94b7c74415473d87990a495fa44a245529cc2602e4711f85c74c8dba234e336528d7e6d156bb8b6f1761a2344da7a5eb0fb7e295859684e46fca25dc40f9cf3b893a549c218356c0bbb61ed54e018b184d6da95e868a57bb9f44bf25fdeaedaab51184a144010f8cc4a636d82f0aa6444ff625ed7eb0f52237cbbbaa5f870a08309981297c60fe9c68d5e1e74c1fc50b231d7fd992af0d084cabb969c37988c68758e1101930103c41ecf76e688cb84c13d474ce4e146bacf8771a54e43c1ff919c643bac74738aeddc552eeca7578220c92eacfbfb1608f6f80a82fbb46ed2af2e5a4b13f853c52f36e29c22426b4735dcb421dc2f5f0e9dfe87", "b5b12194a28374a533af569ded582f922c19a9a7a96c82a94f6da34c7648ba3fa825099f13cbfc1ea80a43c93687f917a0559faaea3cfe37f1263ecfbfd620441c62a80c3f29b54461f614b60b5c3fc813d233b370ca2ebf87fe1f41af1ef60b66589e761028d0ee4041f0ee4436f412d185d4345528024ed401b09068b44a6972a72abdf10b7745abc0911391966439511bfff8adaac4e51f0e8b03bcc4ccf13f9eb07df7f3b8866c98eef32499220aecc500b2cd62cb3cb18780693c03ad09e5cd9e1e75ae8672adf7915e92a73c257978cb182076075886110ff3da80f3d0c7cf18a3b139ef71411f5f2c27f3e5b65ccdacfc680c9a588f33e74a562f4bcef63f4aa92de7edef39f8c2da6b77e1a2f31b03d5547625e7305eafa6ed123357346c1d350efc09f48dcf958b2e72bdfad17bc73f5bdf1c95ec49afa6f709f9f3e666c166c3dc92b041b7300e9bfd8439431154fc2ee1eb444bdc44b3fb4cde6b326226d79fdc9a234056a432a2a748b564d81797fc01a06d04e1f05b16036c56"),
    // openssl genrsa 4096; openssl dgst -sha512 -sign on "abc".
    ("a959a9eb03f333b6ec8842b3f92f3671eff6767c03c9e52a8e9157ce64209ae2a1fc4e57ff1b3292450a96cc99a26502d211dbb79297a6f2255cc2019c0e68d2ddca3fa6f23d47ff41d20a3fa825fde3d1092b5523c2f8a4fba92108892a71e5493737d6b47a97034c068a7fe0522a2cd7d2ab04a95562751ce312211d42ee21b5e01b6ab8f4df4939b0d9e093da45636dc68b790638e8db63db03b616c8eb9f6a2fabd8157cb8e371fe5350994cdb2ca496897b47642a1746ddfae98bbbaf316f5b2300bcb480ad9b054b47a0b2ae675e86177670a596314abfca63c59d087b43acd6bc30324ea234e895ff2aa0fb5c9fc0c6f14335351c2f461931bdb3268158a68f9ce2edcb81d8edc68faa7646696b9b6437d7b4d2a61852b2f91e0d351a24ddcedb230dd6d597010ec2b6c9a30a23283e943075ca02b5788ce7cc55645b0e5df239fe45cf39b4366cf19eba6af93ff557702d529f448df22e878559383eba8c578888e8d5c77aec0f05a728dcc6c20aac07cf0aa697530ca17a15d58ed04164d612b4570757d6fd96f7d80de0c3c72e552ab19d37f62f370c745fbdf3c9d8397afae5d649f0ad2f4b704e27663ef68a444bf53c82027297c24344b324d8fe03fb8d496b5380a713c297776d480e304d5df113928dff996a20433d3777fe6c489fecbf5d20c567a3bfb0f8841937a51ecc6065620bceb192da0b849f1011", "83938ce3945e6b93fccea9e1bdb2e6bda7e328779118288b3b04a260eeed49d6701b0abffa54136c93c8435d9d3918b3b46de173cdb1b49292acc7933137ce0177847d837f3c802f62cc63477dc4411e0f2f77c3b1b2bc1ad0624b91f7650f89dd614667059e4368e33d473a26d7e761bcaef05b565b209e45427d10bb5d078dd93e1c02f61381d325957734a47cbf2eddc79dcdb82c42a9f119e1175d322e0f3908e4da0285081146738c60c602ed9e7761d5b0bff31affd3f6589a7d86901e807f3da8aae622da52a3d37780f1d777f620b0c9baa90486b1536d86d2b1c03816d922685ba584f5a464d29f6ded1edfb97f207478685b70397838ace91ef0899141cdac60035ff5fe6a2f904038243567b2f295ed1c1ee565cafc8e39328acd7be403a20ab0c934e8a557593fbe23702dddb1a057837010d17c5335457957fd07c61147ad17d80805e6c35d2c23966c3f67a9572dd7129c0133942e65d5cb1164d97d89642a67f698f80debf2067f1c03f5a08e65e1b3a52d0092bd940844a28a51cc0da9cd0dd2000f2092acc2e1ec5e09ecfdc80f7f7ce30d7c7270a5aced06050f7a5083135d8c9066f354f1b2d04bd9303d868f449d45628d79c88a5423428b8818dc81dbc1ce3c84f96e00990b1549670bfdcb3940622119b2ac9dce66ab338c5ac5683de19d5afe617b33bf5408acce67e6fb96c66a342e3d2ca52d35"),
];

#[test]
fn verifies_openssl_signatures_and_refuses_every_change() {
    for ((n, s), alg) in VECTORS.iter().zip([HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]) {
        let (n, mut s) = (hex(n), hex(s));
        let key = PublicKey { modulus: &n, exponent: &[1, 0, 1] };
        let digest = alg.digest(&[b"abc"]);
        assert_eq!(verify_pkcs1v15(&key, &s, alg, &digest), Ok(()), "{} bits", key.bits());
        assert_eq!(verify_pkcs1v15(&key, &s, alg, &alg.digest(&[b"abd"])), Err(RsaError::Mismatch));
        assert_eq!(verify_pkcs1v15(&key, &s, HashAlg::Sha1, &HashAlg::Sha1.digest(&[b"abc"])), Err(RsaError::Mismatch), "another hash");
        let last = s.len() - 1;
        s[last] ^= 1;
        assert_eq!(verify_pkcs1v15(&key, &s, alg, &digest), Err(RsaError::Mismatch));
        assert_eq!(verify_pkcs1v15(&key, &s[1..], alg, &digest), Err(RsaError::MalformedSignature), "short");
        assert_eq!(verify_pkcs1v15(&key, &n, alg, &digest), Err(RsaError::MalformedSignature), "s = n");
    }
}

#[test]
fn refuses_keys_it_does_not_take() {
    let (n, s) = (hex(VECTORS[0].0), hex(VECTORS[0].1));
    let d = HashAlg::Sha256.digest(&[b"abc"]);
    let mut even = n.clone();
    *even.last_mut().unwrap() &= 0xfe;
    for (modulus, exponent) in [(&even[..], &[1u8, 0, 1][..]), (&n[..], &[2][..]), (&n[..], &[1][..]), (&n[..], &[1; 9][..]), (&n[..64], &[1, 0, 1][..])] {
        assert!(matches!(verify_pkcs1v15(&PublicKey { modulus, exponent }, &s, HashAlg::Sha256, &d), Err(RsaError::UnsupportedKey(_))));
    }
}

/// The modular exponentiation against num-bigint's, on pseudo-random odd moduli of every limb
/// count from 1024 to 4160 bits, exponents 3 and 65537 and random bases below the modulus.
#[test]
fn the_public_operation_agrees_with_num_bigint() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    };
    for bytes in (128..=520).step_by(24).chain([129, 255, 257]) {
        let mut n: Vec<u8> = (0..bytes).map(|_| next()).collect();
        n[0] |= 0x80;
        *n.last_mut().unwrap() |= 1;
        for e in [3u64, 65537] {
            let mut base: Vec<u8> = (0..bytes).map(|_| next()).collect();
            base[0] &= 0x7f;
            let exponent = e.to_be_bytes();
            let key = PublicKey { modulus: &n, exponent: &exponent[exponent.iter().take_while(|&&b| b == 0).count()..] };
            let mut ours = std::vec![0u8; bytes];
            recover(&key, &base, &mut ours).unwrap();
            let theirs = BigUint::from_bytes_be(&base).modpow(&BigUint::from(e), &BigUint::from_bytes_be(&n)).to_bytes_be();
            let mut padded = std::vec![0u8; bytes - theirs.len()];
            padded.extend(theirs);
            assert_eq!(ours, padded, "{} bytes, e = {e}", bytes);
        }
    }
}
