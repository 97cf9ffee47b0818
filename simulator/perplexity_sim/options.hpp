// Knobs and counters of the simulator, kept apart from the server so the request logic can be used
// without any networking.
#pragma once

#include <perplexity_sim/certificates.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace perplexity_sim {

// Create requests per minute the API allows at each usage tier 0..5 (the contract's rate limit table).
inline constexpr std::array<unsigned, 6> creates_per_minute_by_tier{5, 10, 20, 40, 60, 100};

struct SimulatorOptions {
    // Bearer token every request must carry; anything else gets the 401 envelope. Default "sim-key".
    std::string api_key = "sim-key";
    // Address to listen on. Default 127.0.0.1.
    std::string bind_address = "127.0.0.1";
    // 0 lets the kernel pick a free port; read it back with Simulator::port(). Default 0.
    std::uint16_t port = 0;
    // false serves plain HTTP. Default true.
    bool https = true;
    // Certificate chain and key to serve. When https is on and this is empty, a fresh LoopbackPki is
    // generated and its CA is reported by Simulator::ca_certificate_pem(). Default empty.
    std::optional<ServerIdentity> identity{};
    // CA that signed a caller-supplied identity, only echoed back by Simulator::ca_certificate_pem().
    // Ignored when the identity is generated internally. Default empty.
    std::string ca_pem{};

    // Lifecycle, shared by Sonar jobs and Agent API responses (queued stands for CREATED, in_progress for
    // IN_PROGRESS). A job moves on only when both its time and its poll budget for the current stage are
    // spent, so tests can pin a state by time ("stay CREATED for 2 s") or by count ("show IN_PROGRESS
    // twice"). Minimum time a job stays CREATED after the create call. Default 0.
    std::chrono::milliseconds created_for{0};
    // Minimum time a job stays IN_PROGRESS after it started. Default 0.
    std::chrono::milliseconds in_progress_for{0};
    // Number of GET answers that must have shown CREATED before the job may start. Default 1.
    unsigned created_polls = 1;
    // Number of GET answers that must have shown IN_PROGRESS before the job may finish. Default 1.
    unsigned in_progress_polls = 1;
    // Share of jobs that end FAILED, drawn from a seeded RNG at create time. Default 0.0.
    double failure_ratio = 0.0;
    // Seed of every random choice (failures, faults, ids), so runs are reproducible. Default 1.
    std::uint64_t seed = 1;
    // Share of requests, of any operation, that misbehave when no scripted fault (Simulator::inject)
    // takes them, each drawn from the seed: a third lose their answer after the server acted (a
    // drop_handled Fault: a create makes its job), a third are answered 503, a third 429 with a
    // retry-after-ms of a few milliseconds. For soak and crash tests of clients. Default 0.0.
    double fault_ratio = 0.0;
    // The API's create rate limit (its usage tier, see creates_per_minute_by_tier): create requests a minute
    // per API key, Sonar creates (POST /async/chat/completions, /v1/async/sonar) and Agent API creates
    // (POST /v1/responses, /v1/agent) drawing on one budget. Modelled as a leaky bucket that drains at this
    // rate: a create that would overflow it gets a 429 with the API's error envelope, `retry-after` and
    // `retry-after-ms`, and does nothing. Idempotent replays and creates that fail validation count, as
    // requests do; unauthorized ones do not. 0 = no limit. Default 0.
    unsigned creates_per_minute = 0;
    // Capacity of that bucket in creates, 1 to 1000000: how many creates may follow each other at once
    // after a quiet spell. 1 admits a create only a full interval after the previous one, which punishes a
    // client that paces at exactly the rate for a millisecond of network jitter; 2 absorbs that jitter and
    // still refuses a client that gets more than one create ahead of the rate. Default 2.
    unsigned create_burst = 2;
    // Agent API only: retrieves after an accepted cancel that still show the running status before
    // `cancelled` appears. 0 means the first retrieve after the cancel already shows it. Default 0.
    unsigned cancel_polls = 0;
    // Size in bytes that the answer of a completed job is padded to with filler sentences, for benchmarks
    // that want a payload of a given size (an answer already longer is left as it is). Empty leaves the
    // answer as written: a few sentences (and a <think> block for a reasoning model), a few hundred bytes
    // plus the question. Default empty.
    std::optional<std::size_t> answer_bytes{};
    // Page size of the list endpoint when the query has no limit. Default 20.
    std::size_t default_page_size = 20;
    // Largest accepted limit; larger ones are a 422 like the real API's validation. Default 100.
    std::size_t max_page_size = 100;
    // 0 = unlimited. After this many responses on one connection the server closes it without announcing
    // `Connection: close`, the way servers and proxies drop idle keep-alive connections. Default 0.
    unsigned requests_per_connection = 0;
    // Larger request bodies are answered 413 and the connection is closed. Default 1 MiB.
    std::size_t max_request_body = 1 << 20;
    // Offer only TLS 1.0 and 1.1, as an outdated server would; clients must refuse it. Default false.
    bool legacy_tls_only = false;
    // Handshake, read and write deadline, so a vanished client cannot pin a connection forever. Default 30 s.
    std::chrono::milliseconds io_timeout{30000};
};

struct SimulatorStats {
    std::size_t connections_accepted = 0;
    std::size_t requests = 0;          // responses produced, including error answers
    std::size_t jobs_created = 0;      // idempotent replays excluded
    std::size_t creates_received = 0;  // create requests read, faulted ones included
    std::size_t gets_received = 0;
    std::size_t lists_received = 0;
    std::size_t faults_applied = 0;  // scripted (Simulator::inject) and random (fault_ratio)
    // The Agent API (/v1/responses): requests read, faulted ones included...
    std::size_t response_creates_received = 0;
    std::size_t retrieves_received = 0;
    std::size_t cancels_received = 0;
    // ...and what they did: responses made (store: false ones included) and cancels accepted.
    std::size_t responses_created = 0;
    std::size_t responses_cancelled = 0;
    std::vector<std::chrono::steady_clock::time_point> create_arrivals{};  // when each create was read
    // The create rate limit (SimulatorOptions::creates_per_minute), Sonar and Agent API creates together:
    // creates refused with a 429 by it, creates it let through (every authorized create when there is no
    // limit; creates that then fail validation included), and when the first and the last of those came.
    std::size_t creates_rate_limited = 0;
    std::size_t admitted_creates = 0;
    std::optional<std::chrono::steady_clock::time_point> first_admitted_create{};
    std::optional<std::chrono::steady_clock::time_point> last_admitted_create{};

    // From the first admitted create to the last; 0 with fewer than two.
    std::chrono::milliseconds admitted_create_span() const {
        if (!first_admitted_create || !last_admitted_create) {
            return std::chrono::milliseconds(0);
        }
        return std::chrono::duration_cast<std::chrono::milliseconds>(*last_admitted_create -
                                                                     *first_admitted_create);
    }
};

// Which API operation a request is, for scripting faults. create, get and list are the Sonar async API's;
// create_response (POST /v1/responses or /v1/agent), retrieve_response (GET /v1/responses/{id}) and
// cancel_response (POST /v1/responses/{id}/cancel) the Agent API's.
enum class Operation { any, create, get, list, create_response, retrieve_response, cancel_response };

// A scripted misbehaviour for one request. Faults queue up in order (Simulator::inject); each request
// takes the first queued fault whose operation matches it, so a test can say "the next two gets answer
// 503 with retry-after: 1, then behave".
struct Fault {
    enum class Action {
        respond,         // answer with `status`, `headers` and `body` instead of handling the request
        drop_unhandled,  // close the connection after reading the request, without handling it
        drop_handled,    // handle the request (a create creates its job), then close without answering
        stall,           // read the request and never answer, holding the connection open
    };
    Operation operation = Operation::any;
    Action action = Action::respond;
    unsigned status = 503;
    std::vector<std::pair<std::string, std::string>> headers{};
    // The body of a `respond` fault; when empty, the API's error envelope for `status`.
    std::optional<std::string> body{};
};

}  // namespace perplexity_sim
