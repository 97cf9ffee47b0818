// The API key must appear in nothing the library produces: no Error (printed or field by field), no
// progress event, not even when the server echoes it back in every error body shape.
#include "test_support.hpp"

#include <perplexity/detail/error_body.hpp>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using perplexity_sim::Fault;
using perplexity_sim::Operation;

namespace {

const std::string& secret = test::secret_key;

}  // namespace

TEST_SUITE("secrets") {
    TEST_CASE("a server echoing the key in every body shape cannot make it show up") {
        test::Harness harness({.api_key = secret});
        const std::vector<Fault> echoes = {
            {.operation = Operation::list,
             .status = 400,
             .body =
                 R"({"error":{"message":"bad header Bearer )" + secret + R"(","type":")" + secret + R"("}})"},
            {.operation = Operation::list,
             .status = 422,
             .body = R"({"detail":[{"loc":["header",")" + secret + R"("],"msg":")" + secret +
                     R"(","type":"x"}]})"},
            {.operation = Operation::list,
             .status = 401,
             .body = "<html><head><title>Bearer " + secret + "</title></head></html>"},
            {.operation = Operation::list,
             .status = 403,
             .body = "Authorization: Bearer " + secret + " refused"},
            // Cut so that only part of the key would fit in an excerpt.
            {.operation = Operation::list,
             .status = 418,
             .body = std::string(px::detail::max_server_text - 10, 'x') + secret},
            {.operation = Operation::list, .status = 200, .body = R"({"requests":")" + secret + R"("})"},
        };
        for (const Fault& fault : echoes) {
            harness.simulator.inject(fault);
        }
        px::ClientOptions options = harness.client_options();
        options.retry.max_attempts = 1;
        px::Client client(harness.io.get_executor(), options);
        for (std::size_t i = 0; i < echoes.size(); ++i) {
            CAPTURE(i);
            auto page = harness.run(client.list());
            REQUIRE_FALSE(page.has_value());
            const std::string seen = test::everything_in(page.error());
            CHECK_MESSAGE(seen.find(secret) == std::string::npos, seen);
            CHECK(seen.find(secret.substr(0, 12)) == std::string::npos);  // no fragment either
        }
    }

    TEST_CASE("errors and progress events of whole runs never carry the key") {
        test::Harness harness({.api_key = secret});
        harness.simulator.inject({.operation = Operation::create,
                                  .status = 429,
                                  .headers = {{"retry-after-ms", "1"}},
                                  .body = R"({"error":{"message":"slow down )" + secret + R"("}})"});
        harness.simulator.inject({.operation = Operation::get,
                                  .status = 503,
                                  .headers = {{"retry-after-ms", "1"}},
                                  .body = "upstream " + secret});
        px::ClientOptions options = harness.client_options();
        options.poll = {.backoff = {.initial = 1ms, .max = 1ms, .jitter = 0}};
        px::Client client(harness.io.get_executor(), options);
        std::string events;
        auto record = [&](const px::ProgressEvent& event) {
            events += px::to_string(event.kind);
            events += std::string(event.job_id);
            if (event.job) {
                events += px::to_json_string(*event.job);
            }
            if (event.error) {
                events += test::everything_in(*event.error);
            }
        };
        auto done = harness.run(client.run({.model = "m", .messages = {{.role = "user", .content = "q"}}},
                                           {.on_progress = record}));
        REQUIRE_MESSAGE(done.has_value(), px::to_string(done.error()));
        auto failed = harness.run(client.run(
            {.model = "m", .messages = {{.role = "user", .content = "[[fail]]"}}}, {.on_progress = record}));
        REQUIRE_FALSE(failed.has_value());
        events += test::everything_in(failed.error());
        CHECK(events.find("retry_scheduled") != std::string::npos);
        CHECK(events.find(secret) == std::string::npos);

        px::ClientOptions wrong = options;
        wrong.api_key = secret + "-wrong";
        px::Client refused(harness.io.get_executor(), wrong);
        auto unauthorized = harness.run(refused.list());
        REQUIRE_FALSE(unauthorized.has_value());
        CHECK(test::everything_in(unauthorized.error()).find(secret) == std::string::npos);
    }
}
