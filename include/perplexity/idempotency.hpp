/// @file
/// make_idempotency_key, for programs that call Client::create themselves (or choose `run`'s key).
#pragma once

#include <string>

namespace perplexity {

/// A fresh idempotency key: a random UUID v4 in lower-case hex, e.g.
/// `7f0c1e8a-3d4b-4c6e-9a51-2b7d8e0f1a22`, from OpenSSL's cryptographically secure generator (falling
/// back to std::random_device only when the system has no entropy to give OpenSSL), so keys made by
/// different processes and machines do not collide in practice. The same kind of key `run` makes for
/// itself.
///
/// Pass it to `Client::create(request, key)`, or as WaitOptions::idempotency_key to `run`: the API
/// answers every create that carries the key with the job the key first made, so the library retries
/// such a create after any failure that can be retried, and you can send it again after an Error
/// without making (and paying for) a second job. One key per job: a key used for a different request
/// still returns the first job. To pick a job up after your process restarts, store the key before
/// the create is sent (`examples/batch.cpp` journals it). The API remembers keys for a limited time.
/// Safe to call from any thread.
std::string make_idempotency_key();

}  // namespace perplexity

#ifndef PERPLEXITY_ASYNC_SEPARATE_COMPILATION
#include <perplexity/detail/idempotency.ipp>
#endif
