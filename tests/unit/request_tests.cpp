// Rendering requests and drawing idempotency keys: exact bytes, no sockets.
#include <perplexity/detail/request.hpp>
#include <perplexity/detail/uuid.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace request_tests {

namespace pd = perplexity::detail;

TEST_SUITE("requests") {
    TEST_CASE("a poll is rendered in place, its id percent-encoded only where it must be") {
        const pd::RequestRenderer requests("/base/async/chat/completions", "/base/v1/responses",
                                           "Host: h\r\nAuthorization: Bearer k\r\n");
        const pd::HttpRequest plain = requests.get("0b6f3c1e-2a8d_4f1b.9c7e~x");
        CHECK(plain.wire ==
              "GET /base/async/chat/completions/0b6f3c1e-2a8d_4f1b.9c7e~x HTTP/1.1\r\n"
              "Host: h\r\nAuthorization: Bearer k\r\n\r\n");
        CHECK(plain.target() == "/base/async/chat/completions/0b6f3c1e-2a8d_4f1b.9c7e~x");
        CHECK(plain.method_name() == "GET");

        const pd::HttpRequest odd = requests.get("a b/c?d%\xC3\xA9");
        CHECK(odd.target() == "/base/async/chat/completions/a%20b%2Fc%3Fd%25%C3%A9");
        CHECK(odd.wire.starts_with("GET /base/async/chat/completions/a%20b%2Fc%3Fd%25%C3%A9 HTTP/1.1\r\n"));
    }

    TEST_CASE("the Agent API's create, retrieve and cancel go to the responses target") {
        const pd::RequestRenderer requests("/base/async/chat/completions", "/base/v1/responses",
                                           "Host: h\r\nAuthorization: Bearer k\r\n");
        const pd::HttpRequest create = requests.create_response(R"({"input":"q"})");
        CHECK(create.method_name() == "POST");
        CHECK(create.target() == "/base/v1/responses");
        CHECK(create.wire.starts_with("POST /base/v1/responses HTTP/1.1\r\nHost: h\r\n"));
        CHECK(create.wire.ends_with("Content-Length: 13\r\n\r\n{\"input\":\"q\"}"));

        const pd::HttpRequest get = requests.get_response("resp_01 a/b");
        CHECK(get.method_name() == "GET");
        CHECK(get.target() == "/base/v1/responses/resp_01%20a%2Fb");
        CHECK(
            get.wire ==
            "GET /base/v1/responses/resp_01%20a%2Fb HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\n\r\n");

        const pd::HttpRequest cancel = requests.cancel_response("resp_01/x");
        CHECK(cancel.method_name() == "POST");
        CHECK(cancel.target() == "/base/v1/responses/resp_01%2Fx/cancel");
        CHECK(cancel.wire.ends_with("Content-Length: 0\r\n\r\n"));
        // The Sonar side is untouched by the second target.
        CHECK(requests.get("job").target() == "/base/async/chat/completions/job");
    }

    TEST_CASE("a list names its limit and its token, encoded") {
        const pd::RequestRenderer requests("/jobs", "/responses", "");
        CHECK(requests.list(std::nullopt, std::nullopt).target() == "/jobs");
        CHECK(requests.list(5, std::string("t/1 2")).target() == "/jobs?limit=5&next_token=t%2F1%202");
        CHECK(requests.list(std::nullopt, std::string("x")).target() == "/jobs?next_token=x");
    }

    TEST_CASE("keys are UUID v4, never repeated, and not shared with a forked child") {
        std::set<std::string> keys;
        for (int i = 0; i < 200; ++i) {  // several batches
            const std::string key = pd::uuid_v4();
            CHECK(key.size() == 36);
            CHECK(key[14] == '4');
            CHECK(keys.insert(key).second);
        }
        int pipe_ends[2];
        REQUIRE(::pipe(pipe_ends) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            const std::string key = pd::uuid_v4();
            const auto written = ::write(pipe_ends[1], key.data(), key.size());
            ::_exit(written == static_cast<ssize_t>(key.size()) ? 0 : 1);
        }
        const std::string parent_key = pd::uuid_v4();
        char buffer[36];
        const auto got = ::read(pipe_ends[0], buffer, sizeof buffer);
        int status = 0;
        ::waitpid(child, &status, 0);
        ::close(pipe_ends[0]);
        ::close(pipe_ends[1]);
        REQUIRE(got == 36);
        CHECK(std::string(buffer, 36) != parent_key);
        CHECK(keys.count(std::string(buffer, 36)) == 0);
    }
}

}  // namespace request_tests
