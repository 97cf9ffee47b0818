// Throwaway X.509 material for the simulator's TLS endpoint.
//
// Tests need a CA they can hand to the client and leaf certificates they can bend (expired, not yet valid,
// wrong host), so everything is generated in memory with the OpenSSL 3 C API instead of shipping fixtures
// that would eventually expire in the repository.
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace perplexity_sim {

struct ServerIdentity {
    std::string certificate_chain_pem{};  // leaf first, then the issuing CA
    std::string private_key_pem{};        // PKCS#8, unencrypted
};

// Offsets relative to the moment of issuance, so tests can ask for expired or not-yet-valid certificates.
struct Validity {
    std::chrono::seconds not_before_offset{-3600};
    std::chrono::seconds not_after_offset{86400 * 7};
};

namespace detail::openssl {

template <auto Free>
struct Deleter {
    template <class T>
    void operator()(T* pointer) const noexcept {
        Free(pointer);
    }
};

using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;

// Drains the whole error queue: the first entry is often generic and the useful one comes later.
[[noreturn]] inline void fail(const std::string& what) {
    std::string message = what;
    bool first = true;
    while (unsigned long code = ERR_get_error()) {
        std::array<char, 256> text{};
        ERR_error_string_n(code, text.data(), text.size());
        message += first ? ": " : "; ";
        message += text.data();
        first = false;
    }
    throw std::runtime_error(message);
}

inline void check(int result, const char* what) {
    if (result <= 0) {
        fail(what);
    }
}

inline KeyPtr generate_p256_key() {
    KeyPtr key{EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")};
    if (!key) {
        fail("EVP_PKEY_Q_keygen(P-256)");
    }
    return key;
}

// RFC 5280 wants a positive serial of at most 20 octets; 128 random bits keep collisions out of the picture
// even when a test issues many leaves from one CA.
inline void set_random_serial(X509* cert) {
    std::array<unsigned char, 16> bytes{};
    check(RAND_bytes(bytes.data(), static_cast<int>(bytes.size())), "RAND_bytes");
    bytes[0] &= 0x7f;  // keep the DER INTEGER positive without a padding byte
    bytes[0] |= 0x40;  // and non-zero with a stable length
    BignumPtr number{BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr)};
    if (!number) {
        fail("BN_bin2bn");
    }
    if (BN_to_ASN1_INTEGER(number.get(), X509_get_serialNumber(cert)) == nullptr) {
        fail("BN_to_ASN1_INTEGER");
    }
}

inline void set_validity(X509* cert, const Validity& validity) {
    if (X509_gmtime_adj(X509_getm_notBefore(cert), static_cast<long>(validity.not_before_offset.count())) ==
        nullptr) {
        fail("X509_gmtime_adj(notBefore)");
    }
    if (X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(validity.not_after_offset.count())) ==
        nullptr) {
        fail("X509_gmtime_adj(notAfter)");
    }
}

inline void set_subject(X509* cert, const std::string& common_name) {
    X509_NAME* name = X509_get_subject_name(cert);
    static constexpr unsigned char organization[] = "perplexity-sim";
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, organization, -1, -1, 0), "X509_NAME(O)");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0),
          "X509_NAME(CN)");
}

// The v3 context must know both subject and issuer so that "hash" and "keyid:always" can be computed.
inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
    ExtensionPtr extension{X509V3_EXT_conf_nid(nullptr, &context, nid, value)};
    if (!extension) {
        fail(std::string("X509V3_EXT_conf_nid(") + OBJ_nid2sn(nid) + ", " + value + ")");
    }
    check(X509_add_ext(cert, extension.get(), -1), "X509_add_ext");
}

// Built by hand rather than through the "DNS:a,IP:b" config syntax so that names cannot smuggle in commas.
inline void add_subject_alt_names(X509* cert, const std::vector<std::string>& dns_names,
                                  const std::vector<std::string>& ip_addresses) {
    GeneralNamesPtr names{sk_GENERAL_NAME_new_null()};
    if (!names) {
        fail("sk_GENERAL_NAME_new_null");
    }
    auto push = [&](GeneralNamePtr name) {
        if (sk_GENERAL_NAME_push(names.get(), name.get()) <= 0) {
            fail("sk_GENERAL_NAME_push");
        }
        name.release();  // owned by the stack now
    };
    for (const auto& dns : dns_names) {
        GeneralNamePtr name{GENERAL_NAME_new()};
        ASN1_IA5STRING* text = ASN1_IA5STRING_new();
        if (!name || text == nullptr) {
            ASN1_IA5STRING_free(text);
            fail("GENERAL_NAME_new");
        }
        if (ASN1_STRING_set(text, dns.data(), static_cast<int>(dns.size())) <= 0) {
            ASN1_IA5STRING_free(text);
            fail("ASN1_STRING_set");
        }
        GENERAL_NAME_set0_value(name.get(), GEN_DNS, text);
        push(std::move(name));
    }
    for (const auto& ip : ip_addresses) {
        GeneralNamePtr name{GENERAL_NAME_new()};
        if (!name) {
            fail("GENERAL_NAME_new");
        }
        ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
        if (octets == nullptr) {
            ERR_clear_error();
            throw std::invalid_argument("not an IP address: " + ip);
        }
        GENERAL_NAME_set0_value(name.get(), GEN_IPADD, octets);
        push(std::move(name));
    }
    check(X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT),
          "X509_add1_ext_i2d(subjectAltName)");
}

inline std::string drain(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    if (size < 0 || (size > 0 && data == nullptr)) {
        fail("BIO_get_mem_data");
    }
    return std::string(data, static_cast<std::size_t>(size));
}

inline BioPtr memory_bio() {
    BioPtr bio{BIO_new(BIO_s_mem())};
    if (!bio) {
        fail("BIO_new");
    }
    return bio;
}

inline std::string to_pem(X509* cert) {
    auto bio = memory_bio();
    check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
    return drain(bio.get());
}

inline std::string to_pem(EVP_PKEY* key) {
    auto bio = memory_bio();
    check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
          "PEM_write_bio_PrivateKey");
    return drain(bio.get());
}

inline CertPtr new_v3_certificate(EVP_PKEY* subject_key, const std::string& common_name,
                                  const Validity& validity) {
    CertPtr cert{X509_new()};
    if (!cert) {
        fail("X509_new");
    }
    check(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");
    set_random_serial(cert.get());
    set_validity(cert.get(), validity);
    set_subject(cert.get(), common_name);
    check(X509_set_pubkey(cert.get(), subject_key), "X509_set_pubkey");
    return cert;
}

}  // namespace detail::openssl

class CertificateAuthority {
  public:
    static CertificateAuthority generate(std::string common_name = "perplexity-sim test CA") {
        namespace ossl = detail::openssl;
        auto key = ossl::generate_p256_key();
        auto cert = ossl::new_v3_certificate(
            key.get(), common_name, Validity{std::chrono::seconds{-3600}, std::chrono::seconds{86400 * 365}});
        check_issuer(cert.get(), cert.get());
        ossl::add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
        ossl::add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
        // The subject key identifier must exist before the authority one can refer to it.
        ossl::add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
        ossl::add_extension(cert.get(), cert.get(), NID_authority_key_identifier, "keyid:always");
        if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
            ossl::fail("X509_sign(CA)");
        }
        std::string pem = ossl::to_pem(cert.get());
        return CertificateAuthority{std::shared_ptr<EVP_PKEY>(key.release(), ossl::Deleter<EVP_PKEY_free>{}),
                                    std::shared_ptr<X509>(cert.release(), ossl::Deleter<X509_free>{}),
                                    std::move(pem)};
    }

    const std::string& certificate_pem() const { return certificate_pem_; }

    // Exposed so tests can persist the CA or sign something unusual with their own tooling.
    std::string private_key_pem() const { return detail::openssl::to_pem(key_.get()); }

    // Leaf for a TLS server. The chain PEM is the leaf followed by this CA, as servers usually send it.
    ServerIdentity issue(const std::vector<std::string>& dns_names,
                         const std::vector<std::string>& ip_addresses, Validity validity = {}) const {
        namespace ossl = detail::openssl;
        if (dns_names.empty() && ip_addresses.empty()) {
            throw std::invalid_argument("a server certificate needs at least one DNS name or IP address");
        }
        auto key = ossl::generate_p256_key();
        const std::string common_name = !dns_names.empty() ? dns_names.front() : ip_addresses.front();
        auto cert = ossl::new_v3_certificate(key.get(), common_name, validity);
        check_issuer(cert.get(), cert_.get());
        ossl::add_subject_alt_names(cert.get(), dns_names, ip_addresses);
        ossl::add_extension(cert.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE");
        ossl::add_extension(cert.get(), cert_.get(), NID_key_usage, "critical,digitalSignature");
        ossl::add_extension(cert.get(), cert_.get(), NID_ext_key_usage, "serverAuth");
        ossl::add_extension(cert.get(), cert_.get(), NID_subject_key_identifier, "hash");
        ossl::add_extension(cert.get(), cert_.get(), NID_authority_key_identifier, "keyid:always");
        if (X509_sign(cert.get(), key_.get(), EVP_sha256()) <= 0) {
            ossl::fail("X509_sign(leaf)");
        }
        return ServerIdentity{ossl::to_pem(cert.get()) + certificate_pem_, ossl::to_pem(key.get())};
    }

  private:
    CertificateAuthority(std::shared_ptr<EVP_PKEY> key, std::shared_ptr<X509> cert, std::string pem)
        : key_(std::move(key)), cert_(std::move(cert)), certificate_pem_(std::move(pem)) {}

    static void check_issuer(X509* cert, X509* issuer) {
        detail::openssl::check(X509_set_issuer_name(cert, X509_get_subject_name(issuer)),
                               "X509_set_issuer_name");
    }

    // Shared so copies of the authority stay cheap; both objects are never mutated after generate().
    std::shared_ptr<EVP_PKEY> key_;
    std::shared_ptr<X509> cert_;
    std::string certificate_pem_;
};

// A fresh CA plus a leaf covering every usual spelling of the loopback host.
struct LoopbackPki {
    CertificateAuthority authority;
    ServerIdentity identity;

    static LoopbackPki generate() {
        auto authority = CertificateAuthority::generate();
        auto identity = authority.issue({"localhost"}, {"127.0.0.1", "::1"});
        return LoopbackPki{std::move(authority), std::move(identity)};
    }
};

}  // namespace perplexity_sim
