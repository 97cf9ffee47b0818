// The observability hook (ClientOptions::on_event): which events a Client reports, in what order and
// with what fields; that a throwing handler changes nothing; the ready-made logger and PERPLEXITY_LOG.
#include "test_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <sstream>

using namespace std::chrono_literals;
using test::question;
using EventKind = px::Event::Kind;
using perplexity_sim::Operation;

namespace {

/// An Event copied out of the handler, whose views and pointers live only for the call.
struct SeenEvent {
    EventKind kind{};
    std::string method{};
    std::string target{};
    std::string job_id{};
    std::string job_status{};
    unsigned attempt = 0;
    int http_status = 0;
    std::chrono::microseconds latency{0};
    std::chrono::milliseconds delay{0};
    std::optional<px::ErrorKind> error{};
    std::string line{};
};

struct EventLog {
    std::vector<SeenEvent> events;

    px::EventHandler handler() {
        return [this](const px::Event& event) {
            SeenEvent seen{.kind = event.kind,
                           .method = std::string(event.method),
                           .target = std::string(event.target),
                           .job_id = std::string(event.job_id),
                           .attempt = event.attempt,
                           .http_status = event.http_status,
                           .latency = event.latency,
                           .delay = event.delay,
                           .line = px::format_event(event)};
            if (event.job != nullptr) {
                seen.job_status = event.job->status_text;
            }
            if (event.error != nullptr) {
                seen.error = event.error->kind;
            }
            test::check_no_secret_text(seen.line);
            events.push_back(std::move(seen));
        };
    }

    std::vector<EventKind> kinds() const {
        std::vector<EventKind> result;
        for (const SeenEvent& event : events) {
            result.push_back(event.kind);
        }
        return result;
    }

    std::vector<SeenEvent> of_kind(EventKind kind) const {
        std::vector<SeenEvent> result;
        std::copy_if(events.begin(), events.end(), std::back_inserter(result),
                     [kind](const SeenEvent& event) { return event.kind == kind; });
        return result;
    }
};

px::ClientOptions quick(px::ClientOptions options, EventLog& log) {
    options.poll = {.backoff = {.initial = 1ms, .growth = 1.0, .max = 1ms, .jitter = 0}, .deadline = 20s};
    options.retry = {.max_attempts = 3,
                     .backoff = {.initial = 30ms, .growth = 1.0, .max = 30ms, .jitter = 0},
                     .min_hint = 10ms,
                     .max_hint = 60ms};
    options.on_event = log.handler();
    return options;
}

/// Sets an environment variable for one scope.
class ScopedEnvironment {
  public:
    ScopedEnvironment(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) {
            previous_ = old;
        }
        ::setenv(name, value, 1);
    }
    ~ScopedEnvironment() {
        if (previous_) {
            ::setenv(name_, previous_->c_str(), 1);
        } else {
            ::unsetenv(name_);
        }
    }
    ScopedEnvironment(const ScopedEnvironment&) = delete;
    ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

  private:
    const char* name_;
    std::optional<std::string> previous_;
};

}  // namespace

TEST_SUITE("events") {
    TEST_CASE("run reports each request and response, the creation and each status change") {
        test::Harness harness({.created_polls = 2, .in_progress_polls = 2});
        EventLog log;
        px::Client client(harness.io.get_executor(), quick(harness.client_options(), log));
        auto job = harness.run(client.run(question("How far is the Moon?")));
        REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));

        const std::string collection = "/async/chat/completions";
        REQUIRE(log.events.size() == 3 + 2 * 5 + 2);
        CHECK(log.events[0].kind == EventKind::request_sent);
        CHECK(log.events[0].method == "POST");
        CHECK(log.events[0].target == collection);
        CHECK(log.events[0].attempt == 1);
        CHECK(log.events[1].kind == EventKind::response_received);
        CHECK(log.events[1].http_status == 200);
        CHECK(log.events[1].latency > 0us);
        CHECK(log.events[2].kind == EventKind::job_created);
        CHECK(log.events[2].job_id == job->id);
        CHECK(log.events[2].job_status == "CREATED");

        const auto sent = log.of_kind(EventKind::request_sent);
        CHECK(sent.size() == 6);
        for (std::size_t i = 1; i < sent.size(); ++i) {
            CHECK(sent[i].method == "GET");
            CHECK(sent[i].target == collection + "/" + job->id);
            CHECK(sent[i].job_id == job->id);
        }
        const auto received = log.of_kind(EventKind::response_received);
        CHECK(received.size() == 6);
        CHECK(std::all_of(received.begin(), received.end(),
                          [](const SeenEvent& event) { return event.http_status == 200; }));
        const auto changes = log.of_kind(EventKind::job_status_changed);
        REQUIRE(changes.size() == 2);
        CHECK(changes[0].job_status == "IN_PROGRESS");
        CHECK(changes[1].job_status == "COMPLETED");
        CHECK(log.events.back().kind == EventKind::job_status_changed);
        CHECK(log.events.back().line == "perplexity job_status_changed job=" + job->id + " status=COMPLETED");
    }

    TEST_CASE("a retried request reports its response, the retry and the next attempt") {
        test::Harness harness;
        harness.simulator.inject({.operation = Operation::get, .status = 503});
        EventLog log;
        px::Client client(harness.io.get_executor(), quick(harness.client_options(), log));
        auto created = harness.run(client.create(question("q")));
        REQUIRE(created.has_value());
        log.events.clear();
        auto job = harness.run(client.get(created->id));
        REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));

        REQUIRE(log.kinds() == std::vector<EventKind>{EventKind::request_sent, EventKind::response_received,
                                                      EventKind::retry_scheduled, EventKind::request_sent,
                                                      EventKind::response_received});
        CHECK(log.events[1].http_status == 503);
        CHECK(log.events[2].attempt == 1);
        CHECK(log.events[2].delay == 30ms);
        CHECK(log.events[2].error == px::ErrorKind::http_status);
        CHECK(log.events[2].job_id == created->id);
        CHECK(log.events[3].attempt == 2);
        CHECK(log.events[4].http_status == 200);
        CHECK(log.events[2].line.find("retry_scheduled GET") != std::string::npos);
        CHECK(log.events[2].line.find("delay_ms=30") != std::string::npos);
    }

    TEST_CASE("a request without a response is request_failed, with the error") {
        asio::io_context io;
        EventLog log;
        px::ClientOptions options;
        options.base_url = "http://127.0.0.1:" + std::to_string(test::unused_port(io));
        options.api_key = test::secret_key;
        options.retry.max_attempts = 1;
        options.on_event = log.handler();
        px::Client client(io.get_executor(), options);
        auto job = test::run(io, client.get("job-1"));
        REQUIRE_FALSE(job.has_value());
        REQUIRE(log.kinds() == std::vector<EventKind>{EventKind::request_sent, EventKind::request_failed});
        CHECK(log.events[1].error == px::ErrorKind::transport);
        CHECK(log.events[1].line.find("error=\"transport: ") != std::string::npos);
        CHECK(log.events[1].line.find("latency_ms=") != std::string::npos);
    }

    TEST_CASE("a throwing handler changes nothing") {
        test::Harness harness;
        int calls = 0;
        px::ClientOptions options = harness.client_options();
        options.poll = {.backoff = {.initial = 1ms, .growth = 1.0, .max = 1ms, .jitter = 0}, .deadline = 20s};
        options.on_event = [&calls](const px::Event&) {
            ++calls;
            throw std::runtime_error("a logger that fails");
        };
        px::Client client(harness.io.get_executor(), options);
        auto job = harness.run(client.run(question("q")));
        REQUIRE_MESSAGE(job.has_value(), px::to_string(job.error()));
        CHECK(job->status == px::JobStatus::completed);
        CHECK(calls > 4);
    }

    TEST_CASE("the logger writes the events of its level, one line each") {
        px::Job job;
        job.id = "job-7";
        job.status = px::JobStatus::in_progress;
        job.status_text = "IN_PROGRESS";
        const px::Error error{.kind = px::ErrorKind::timeout, .message = "read_header timed out"};
        const px::Event sent{.kind = EventKind::request_sent,
                             .method = "GET",
                             .target = "/async/chat/completions/job-7",
                             .job_id = "job-7",
                             .attempt = 1};
        const px::Event changed{.kind = EventKind::job_status_changed, .job_id = "job-7", .job = &job};
        const px::Event failed{.kind = EventKind::request_failed,
                               .method = "GET",
                               .target = "/async/chat/completions/job-7",
                               .attempt = 2,
                               .latency = 1500us,
                               .error = &error};

        std::ostringstream info_lines;
        const px::EventHandler info = px::event_logger(info_lines, px::LogLevel::info);
        for (const px::Event* event : {&sent, &changed, &failed}) {
            info(*event);
        }
        CHECK(info_lines.str() ==
              "perplexity job_status_changed job=job-7 status=IN_PROGRESS\n"
              "perplexity request_failed GET /async/chat/completions/job-7 attempt=2 latency_ms=1.5 "
              "error=\"timeout: read_header timed out\"\n");

        std::ostringstream debug_lines;
        const px::EventHandler debug = px::event_logger(debug_lines, px::LogLevel::debug);
        debug(sent);
        CHECK(debug_lines.str() ==
              "perplexity request_sent GET /async/chat/completions/job-7 job=job-7 attempt=1\n");
    }

    TEST_CASE("log levels parse in any case; anything else is none") {
        CHECK(px::parse_log_level("debug") == px::LogLevel::debug);
        CHECK(px::parse_log_level("DEBUG") == px::LogLevel::debug);
        CHECK(px::parse_log_level("Info") == px::LogLevel::info);
        CHECK_FALSE(px::parse_log_level("off").has_value());
        CHECK_FALSE(px::parse_log_level("").has_value());
        CHECK_FALSE(px::parse_log_level("verbose").has_value());
    }

    TEST_CASE("PERPLEXITY_LOG turns the logger on in options_from_environment") {
        {
            ScopedEnvironment log("PERPLEXITY_LOG", "debug");
            CHECK(static_cast<bool>(px::options_from_environment().on_event));
        }
        {
            ScopedEnvironment log("PERPLEXITY_LOG", "off");
            CHECK_FALSE(static_cast<bool>(px::options_from_environment().on_event));
        }
        {
            ScopedEnvironment log("PERPLEXITY_LOG", "loud");
            // The complaint goes to std::clog; catch it rather than print it in the middle of the run.
            std::ostringstream complaint;
            std::streambuf* const previous = std::clog.rdbuf(complaint.rdbuf());
            const bool logging = static_cast<bool>(px::options_from_environment().on_event);
            std::clog.rdbuf(previous);
            CHECK_FALSE(logging);
            CHECK(complaint.str() ==
                  "perplexity: PERPLEXITY_LOG=\"loud\" is not one of off, info, debug; logging stays off\n");
        }
        ScopedEnvironment unset("PERPLEXITY_LOG", "");
        CHECK_FALSE(static_cast<bool>(px::options_from_environment().on_event));
    }
}
