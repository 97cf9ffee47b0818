// Drives the request machine, then the wait machine, with arbitrary outcome sequences (statuses, hints,
// failures, cancellations, the time each takes, random numbers) and checks what must hold whatever the
// server and the network do:
// - never more sends than RetryPolicy::max_attempts;
// - never a sleep past the deadline, and no send once it has passed;
// - a request that is not safe to repeat is never sent again after it may have arrived;
// - every machine finishes, and a finished request has an answer or an Error;
// - once a job id is known, every outcome of the wait carries it; a success is COMPLETED with its answer.
#include "fuzz_support.hpp"

#include <perplexity/detail/pacer.hpp>
#include <perplexity/detail/request_machine.hpp>
#include <perplexity/detail/wait_machine.hpp>

#include <boost/asio/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace {

namespace px = perplexity;
namespace pd = perplexity::detail;
using perplexity_fuzz::check;
using std::chrono::milliseconds;

/// The input, read a byte at a time; zeros once it runs out, so every input is a complete run.
class Bytes {
  public:
    Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::uint8_t next() { return at_ < size_ ? data_[at_++] : 0; }
    unsigned below(unsigned bound) { return next() % bound; }
    double unit() { return next() / 256.0; }
    milliseconds duration(unsigned max_ms) {
        const unsigned high = next();
        const unsigned low = next();
        return milliseconds((high << 8 | low) % (max_ms + 1));
    }
    bool exhausted() const { return at_ >= size_; }

  private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t at_ = 0;
};

constexpr int statuses[] = {200, 201, 400, 401, 404, 408, 409, 422, 429, 500, 502, 503, 504, 302};
constexpr px::ErrorKind failure_kinds[] = {px::ErrorKind::transport, px::ErrorKind::timeout,
                                           px::ErrorKind::tls, px::ErrorKind::protocol,
                                           px::ErrorKind::cancelled};

px::RetryPolicy retry_policy(Bytes& in) {
    px::RetryPolicy policy;
    policy.max_attempts = 1 + in.below(6);
    policy.backoff.initial = in.duration(2000);
    policy.backoff.growth = 1.0 + in.unit() * 3;
    policy.backoff.max = in.duration(20000);
    policy.backoff.jitter = in.unit();
    policy.min_hint = in.duration(500);
    policy.max_hint = in.duration(60000);
    return policy;
}

/// How one request ended.
struct RequestRun {
    bool succeeded = false;
    bool may_have_acted = false;
    bool gave_up_for_deadline = false;
    px::Error error{};
};

RequestRun drive_request(Bytes& in, pd::Pacer& pacer, pd::Clock::time_point& now) {
    const px::RetryPolicy policy = retry_policy(in);
    const bool resend_safe = in.below(2) == 1;
    const pd::Clock::time_point deadline =
        in.below(4) == 0 ? pd::no_deadline() : now + milliseconds(1) + in.duration(30000);
    pd::RequestMachine machine(policy, pacer, resend_safe, deadline);

    unsigned sends = 0;
    bool arrived = false;  // a send that may have reached the server
    bool acted = false;    // ...and was not refused unprocessed
    int last_status = 0;
    pd::RequestStep step = machine.start(now);
    for (unsigned steps = 0; step.action != pd::RequestStep::Action::finish; ++steps) {
        check(steps < 100, "a request finishes");
        if (in.below(32) == 0) {
            step = machine.interrupted(boost::asio::error::operation_aborted);
            check(step.action == pd::RequestStep::Action::finish, "a cancellation finishes the request");
            break;
        }
        if (step.action == pd::RequestStep::Action::sleep) {
            check(step.until >= now, "no sleep into the past");
            check(step.until < deadline, "no pacing wait or retry delay reaches the deadline");
            now = step.until + in.duration(3);  // timers fire a little late
            step = machine.woke(now);
            continue;
        }
        check(now < deadline, "no send once the deadline has passed");
        check(step.budget == pd::time_left(deadline, now), "a send is given what the deadline leaves");
        ++sends;
        check(sends <= policy.max_attempts, "never more sends than max_attempts");
        check(step.attempt == sends, "attempts are numbered from 1");
        check(resend_safe || !arrived,
              "a request unsafe to repeat is not sent again after it may have arrived");
        now += in.duration(5000);
        if (in.below(2) == 0) {
            pd::Reply reply{.status = statuses[in.below(std::size(statuses))]};
            switch (in.below(4)) {
                case 0:
                    reply.retry_hint = in.duration(65000);
                    break;
                case 1:
                    reply.should_retry = in.below(2) == 1;
                    break;
                default:
                    break;
            }
            last_status = reply.status;
            if (reply.status != 429 && reply.status != 408) {
                arrived = true;
            }
            acted = acted || (reply.status >= 200 && reply.status < 300) || reply.status >= 500;
            step = machine.answered(reply, now, in.unit());
        } else {
            const bool may_have_arrived = in.below(2) == 1;
            arrived = arrived || may_have_arrived;
            acted = acted || may_have_arrived;
            last_status = 0;
            step = machine.failed(
                {px::Error{.kind = failure_kinds[in.below(std::size(failure_kinds))], .message = "failed"},
                 may_have_arrived},
                now, in.unit());
        }
    }
    RequestRun run;
    run.may_have_acted = machine.may_have_acted();
    run.gave_up_for_deadline = machine.gave_up_for_deadline();
    if (machine.finished_with_answer()) {
        check(last_status != 0, "an answer is only the result when one came");
        run.succeeded = last_status >= 200 && last_status < 300;
        if (!run.succeeded) {
            run.error = px::Error{
                .kind = px::ErrorKind::http_status, .message = "refused", .http_status = last_status};
        }
    } else {
        run.error = machine.error();
        check(!run.error.message.empty(), "a failed request says why");
    }
    check(!acted || run.may_have_acted, "a request that may have been acted on says so");
    return run;
}

px::Job job_with(px::JobStatus status, const std::string& id, bool with_answer) {
    px::Job job;
    job.id = id;
    job.status = status;
    job.status_text = std::string(px::to_string(status));
    if (with_answer) {
        job.response = std::make_shared<const px::ChatCompletion>();
    }
    return job;
}

constexpr px::JobStatus job_statuses[] = {px::JobStatus::created, px::JobStatus::in_progress,
                                          px::JobStatus::completed, px::JobStatus::failed,
                                          px::JobStatus::unknown};

void drive_wait(Bytes& in, pd::Pacer& pacer, pd::Clock::time_point& now) {
    px::PollPolicy policy;
    policy.backoff.initial = in.duration(5000);
    policy.backoff.growth = 1.0 + in.unit() * 2;
    policy.backoff.max = in.duration(20000);
    policy.backoff.jitter = in.unit();
    policy.deadline = in.duration(60000);
    policy.last_poll_margin = in.duration(2000);
    const pd::Clock::time_point deadline = now + policy.deadline;
    const std::string id = "job-" + std::to_string(in.next());
    const bool is_run = in.below(2) == 1;
    pd::WaitMachine machine(policy, deadline, is_run ? std::string() : id);

    pd::WaitStep step;
    if (is_run) {
        // The create goes through a request machine of its own, sharing the pacer.
        const RequestRun create = drive_request(in, pacer, now);
        px::expected<px::Job, px::Error> created =
            create.succeeded ? px::expected<px::Job, px::Error>(job_with(px::JobStatus::created, id, false))
                             : px::expected<px::Job, px::Error>(px::unexpected(create.error));
        step = machine.created(created, create.may_have_acted, "key", now, in.unit());
        if (!create.succeeded) {
            check(step.action == pd::WaitStep::Action::finish, "a failed create ends the run");
            const px::Error error = std::move(machine).result().error();
            check(error.idempotency_key == "key", "a failed run names its key");
            check(error.job_may_exist == create.may_have_acted, "a failed run says whether a job may exist");
            return;
        }
    } else {
        step = machine.start();
    }
    for (unsigned steps = 0; step.action != pd::WaitStep::Action::finish; ++steps) {
        check(steps < 5000, "a wait finishes");
        if (in.below(64) == 0) {
            step = machine.interrupted(boost::asio::error::operation_aborted);
            break;
        }
        if (step.action == pd::WaitStep::Action::sleep) {
            check(step.delay >= milliseconds(0), "no negative sleep");
            // With no last-poll margin, the last poll may be planned for the deadline itself.
            check(now + step.delay <= deadline, "no sleep between polls past the deadline");
            now += step.delay + in.duration(3);
            step = machine.woke();
            continue;
        }
        now += in.duration(3000);
        px::expected<px::Job, px::Error> answer =
            in.below(4) == 0 ? px::expected<px::Job, px::Error>(px::unexpected(
                                   px::Error{.kind = failure_kinds[in.below(std::size(failure_kinds))],
                                             .message = "poll failed",
                                             .job_id = id}))
                             : px::expected<px::Job, px::Error>(job_with(
                                   job_statuses[in.below(std::size(job_statuses))], id, in.below(8) != 0));
        step = machine.polled(answer, in.below(4) == 0, now, in.unit());
        check(step.job == nullptr || step.polled, "a poll's answer is reported as polled");
    }
    const auto result = std::move(machine).result();
    if (result) {
        check(result->status == px::JobStatus::completed && result->response != nullptr,
              "a success is COMPLETED with its answer");
        check(result->id == id, "a success is the job waited on");
    } else {
        check(result.error().job_id == id, "once the job id is known, every outcome carries it");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Bytes in(data, size);
    pd::Pacer pacer;
    pacer.set_rate(in.below(4) == 0 ? 0 : 1 + in.below(120));
    pd::Clock::time_point now = pd::Clock::time_point(std::chrono::hours(1000));
    for (unsigned round = 0; round < 4 && !in.exhausted(); ++round) {
        if (in.below(2) == 0) {
            drive_request(in, pacer, now);
        } else {
            drive_wait(in, pacer, now);
        }
    }
    return 0;
}
