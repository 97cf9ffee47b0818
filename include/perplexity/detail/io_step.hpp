// The I/O steps of an exchange, and the seam the library's own tests use to make any one of them fail.
#pragma once

#include <boost/system/error_code.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace perplexity::detail {

/// The I/O steps of one exchange, in order; `shutdown` happens when a connection is closed.
enum class IoStep { resolve, connect, tls_handshake, write, read_header, read_body, shutdown };

constexpr const char* to_string(IoStep step) noexcept {
    switch (step) {
        case IoStep::resolve:
            return "resolving the host";
        case IoStep::connect:
            return "connecting";
        case IoStep::tls_handshake:
            return "the TLS handshake";
        case IoStep::write:
            return "sending the request";
        case IoStep::read_header:
            return "reading the response header";
        case IoStep::read_body:
            return "reading the response body";
        case IoStep::shutdown:
            return "closing the connection";
    }
    return "I/O";
}

/// How an exchange failed: at which step, why, and what that says about the request.
struct IoFailure {
    IoStep step{};
    boost::system::error_code ec{};
    /// True when not one byte of a response arrived: on a reused connection this is what a server that
    /// had already closed it looks like.
    bool nothing_received = false;
    /// OpenSSL's certificate verification verdict, when verification is what failed.
    std::string verification_problem{};
};

/// The seam the library's own tests use to fail the n-th I/O step of this thread with a chosen error,
/// the way Beast's test::fail_count fails the n-th operation of a test stream, but over real sockets:
/// the step is skipped (resolve, connect, handshake, write, shutdown) or its reading is skipped after
/// the previous step really happened (so a create whose response "failed" was still received and
/// handled by the server).
///
/// The seam is always compiled, in every build and every translation unit, and nothing configures it:
/// no macro, no template parameter, no build option. So every translation unit of a program sees the
/// same tokens for these inline functions and for Connection, which the one-definition rule requires
/// of inline definitions; a switch that one translation unit (a test) turned on and another (the
/// program it links with) did not would give two definitions of the same inline function, and the
/// linker would silently keep either. The plan is chosen at run time instead, by a thread_local
/// pointer that only a test sets (`active_io_fault_plan() = &plan`).
///
/// Unused, it costs one thread-local load and a branch that is never taken per I/O step, next to a
/// system call or an await. The pointer is constant-initialised, so reading it needs no guard, and the
/// branch is marked unlikely, so the recording stays off the straight path.
struct IoFaultPlan {
    std::vector<std::size_t> fail_at{};  // 1-based step numbers; empty fails nothing, only records
    boost::system::error_code error{};
    std::vector<IoStep> steps{};  // every step reached, in order, the failed one included
};

/// The plan this thread's I/O steps follow; null (always, outside the library's tests) fails nothing.
inline IoFaultPlan*& active_io_fault_plan() noexcept {
    thread_local IoFaultPlan* plan = nullptr;
    return plan;
}

/// Records `step` in `plan`, and returns the planned error when this step is one to fail.
inline boost::system::error_code follow_fault_plan(IoFaultPlan& plan, IoStep step) {
    plan.steps.push_back(step);
    const bool fail =
        std::find(plan.fail_at.begin(), plan.fail_at.end(), plan.steps.size()) != plan.fail_at.end();
    return fail ? plan.error : boost::system::error_code{};
}

/// The failure planned for `step` on this thread, or no error: what every I/O step asks first.
inline boost::system::error_code injected_failure(IoStep step) {
    if (IoFaultPlan* const plan = active_io_fault_plan(); plan != nullptr) [[unlikely]] {
        return follow_fault_plan(*plan, step);
    }
    return {};
}

}  // namespace perplexity::detail
