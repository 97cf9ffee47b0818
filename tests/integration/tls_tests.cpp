// Certificates the client must refuse, each with an Error that says why, and never with the key sent.
#include "test_support.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;

namespace {

struct RefusedCertificate {
    const char* name;
    std::function<perplexity_sim::ServerIdentity(const perplexity_sim::CertificateAuthority&)> make_identity;
    const char* expected_reason;
};

}  // namespace

TEST_SUITE("tls refusals") {
    TEST_CASE("bad server certificates are refused with the reason, before any request") {
        using perplexity_sim::CertificateAuthority;
        using perplexity_sim::ServerIdentity;
        using perplexity_sim::Validity;
        const std::vector<RefusedCertificate> cases = {
            {"expired",
             [](const CertificateAuthority& ca) {
                 return ca.issue({"localhost"}, {"127.0.0.1"},
                                 Validity{-std::chrono::hours(48), -std::chrono::hours(24)});
             },
             "certificate has expired"},
            {"not yet valid",
             [](const CertificateAuthority& ca) {
                 return ca.issue({"localhost"}, {"127.0.0.1"},
                                 Validity{std::chrono::hours(24), std::chrono::hours(48)});
             },
             "certificate is not yet valid"},
            {"for another host",
             [](const CertificateAuthority& ca) { return ca.issue({"api.example.org"}, {}); }, "mismatch"},
            {"self-signed",
             [](const CertificateAuthority&) {
                 const auto lone = CertificateAuthority::generate("lone self-signed server");
                 return ServerIdentity{lone.certificate_pem(), lone.private_key_pem()};
             },
             "self-signed certificate"},
            {"from an untrusted authority",
             [](const CertificateAuthority&) {
                 return CertificateAuthority::generate("untrusted CA").issue({"localhost"}, {"127.0.0.1"});
             },
             "self-signed certificate in certificate chain"},
        };
        for (const auto& refused : cases) {
            CAPTURE(std::string(refused.name));
            const auto trusted = CertificateAuthority::generate("trusted CA");
            perplexity_sim::SimulatorOptions sim_options;
            sim_options.identity = refused.make_identity(trusted);
            sim_options.ca_pem = trusted.certificate_pem();
            test::Harness harness(sim_options);
            px::ClientOptions options = harness.client_options();
            options.api_key = "pplx-tls-secret-7c1e";
            options.retry.max_attempts = 1;
            px::Client client(harness.io.get_executor(), options);
            auto page = harness.run(client.list());
            REQUIRE_FALSE(page.has_value());
            CHECK(page.error().kind == px::ErrorKind::tls);
            CHECK_MESSAGE(page.error().message.find(refused.expected_reason) != std::string::npos,
                          page.error().message);
            CHECK(px::to_string(page.error()).find("pplx-tls-secret-7c1e") == std::string::npos);
            CHECK(harness.simulator.stats().requests == 0);  // the key never left the client
        }
    }
}

TEST_SUITE("tls refusals") {
    TEST_CASE("a server offering only TLS 1.0 and 1.1 is refused") {
        perplexity_sim::SimulatorOptions sim_options;
        sim_options.legacy_tls_only = true;
        test::Harness harness(sim_options);
        px::ClientOptions options = harness.client_options();
        options.retry.max_attempts = 1;
        px::Client client(harness.io.get_executor(), options);
        auto page = harness.run(client.list());
        REQUIRE_FALSE(page.has_value());
        CHECK(page.error().kind == px::ErrorKind::tls);
        CHECK_MESSAGE(page.error().message.find("protocol") != std::string::npos, page.error().message);
        CHECK(harness.simulator.stats().requests == 0);
    }
}
