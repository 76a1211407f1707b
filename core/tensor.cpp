#include "core/tensor.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <sstream>

#include "core/dispatch.h"
#include "core/error.h"

namespace glimpse {
namespace {

std::shared_ptr<TensorImpl> make_impl(const Shape& shape, Device device) {
  // Negative dims, and shapes whose size or strides would overflow int64, are refused naming the shape.
  check_shape(shape, "Tensor::empty");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  return impl;
}

int64_t flat_index(const TensorImpl& t, std::initializer_list<int64_t> index) {
  GLIMPSE_CHECK(index.size() == t.shape.size(), "at(): ", index.size(), " indices for a tensor of shape ",
                shape_str(t.shape));
  int64_t off = t.offset;
  size_t d = 0;
  for (int64_t i : index) {
    GLIMPSE_CHECK(i >= 0 && i < t.shape[d], "at(): index ", i, " out of range for dim ", d, " of shape ",
                  shape_str(t.shape));
    off += i * t.strides[d++];
  }
  return off;
}

}  // namespace

void Tensor::check_defined(const char* what) const {
  GLIMPSE_CHECK(impl_, what, ": the tensor is undefined (default-constructed or an absent gradient)");
}

namespace {
std::atomic<bool>& poison_flag() {
  static std::atomic<bool> on{false};
  return on;
}
}  // namespace

void set_poison_empty(bool on) { poison_flag().store(on, std::memory_order_relaxed); }
bool poison_empty() { return poison_flag().load(std::memory_order_relaxed); }

Tensor Tensor::empty(const Shape& shape, Device device) {
  Tensor t(make_impl(shape, device));
  if (poison_empty()) [[unlikely]]
    t.fill_(std::numeric_limits<float>::quiet_NaN());
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, device);
  t.fill_(value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, Device device) { return full(shape, 0.f, device); }
Tensor Tensor::ones(const Shape& shape, Device device) { return full(shape, 1.f, device); }

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  GLIMPSE_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
                " values for shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

Tensor Tensor::randn(const Shape& shape, Rng& rng, float mean, float stddev) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.normal(mean, stddev);
  return t;
}

Tensor Tensor::uniform(const Shape& shape, Rng& rng, float lo, float hi) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform(lo, hi);
  return t;
}

const Shape& Tensor::shape() const {
  check_defined("shape()");
  return impl_->shape;
}
const Shape& Tensor::strides() const {
  check_defined("strides()");
  return impl_->strides;
}
int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  int64_t k = d < 0 ? d + n : d;
  GLIMPSE_CHECK(k >= 0 && k < n, "size(", d, ") on a tensor of shape ", shape_str(shape()));
  return impl_->shape[k];
}
Device Tensor::device() const {
  check_defined("device()");
  return impl_->storage->device();
}
// The strides compared with contiguous_strides(shape()) dimension by dimension, without building
// that vector: data() asks this on every call, and per-element loops call data() (bench/NOTES.md
// section 11: the allocation and compare were 45% of LRP's time).
bool Tensor::is_contiguous() const {
  const Shape &s = shape(), &st = strides();
  if (st.size() != s.size()) return false;
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    if (st[i] != acc) return false;
    // as contiguous_strides: zero dims count as 1; shapes were checked when they were made, so
    // the product cannot overflow for a tensor that exists
    acc *= s[i] > 0 ? s[i] : int64_t{1};
  }
  return true;
}

std::string Tensor::str() const {
  if (!impl_) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor" << shape_str(shape()) << " " << device().str();
  if (device().is_cpu() && numel() <= 16) {
    auto v = to_vector();
    os << " {";
    for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    os << "}";
  }
  return os.str();
}

float* Tensor::data() {
  check_defined("data()");
  GLIMPSE_CHECK(device().is_cpu(), "data(): the tensor is on ", device().str(), "; move it with .to(Device::cpu())");
  GLIMPSE_CHECK(is_contiguous(), "data(): the tensor of shape ", shape_str(shape()),
                " is not contiguous; call contiguous()");
  return impl_->storage->data() + impl_->offset;
}
const float* Tensor::data() const { return const_cast<Tensor*>(this)->data(); }

float Tensor::item() const {
  GLIMPSE_CHECK(numel() == 1, "item(): the tensor has shape ", shape_str(shape()), ", not one element");
  return contiguous().to(Device::cpu()).data()[0];
}

float Tensor::at(std::initializer_list<int64_t> index) const {
  check_cpu(*this, "at()");
  return impl_->storage->data()[flat_index(*impl_, index)];
}
float& Tensor::at(std::initializer_list<int64_t> index) {
  check_cpu(*this, "at()");
  return impl_->storage->data()[flat_index(*impl_, index)];
}

std::vector<float> Tensor::to_vector() const {
  Tensor c = contiguous().to(Device::cpu());
  return std::vector<float>(c.data(), c.data() + c.numel());
}

Tensor Tensor::view(Shape new_shape) const {
  check_defined("view()");
  GLIMPSE_CHECK(is_contiguous(), "view(): the tensor of shape ", shape_str(shape()), " is not contiguous");
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < new_shape.size(); ++i) {
    if (new_shape[i] == -1) {
      GLIMPSE_CHECK(infer < 0, "view(): more than one -1 in ", shape_str(new_shape));
      infer = static_cast<int64_t>(i);
    } else {
      // Checked: a wrapped product could equal numel() and pass the test below.
      GLIMPSE_CHECK(new_shape[i] >= 0 && !__builtin_mul_overflow(known, new_shape[i], &known), "view(): cannot view ",
                    shape_str(shape()), " as ", shape_str(new_shape), " (a negative or too large dimension)");
    }
  }
  if (infer >= 0) {
    GLIMPSE_CHECK(known > 0 && numel() % known == 0, "view(): cannot view ", shape_str(shape()), " as ",
                  shape_str(new_shape));
    new_shape[infer] = numel() / known;
  }
  check_shape(new_shape, "view()");
  GLIMPSE_CHECK(shape_numel(new_shape) == numel(), "view(): cannot view ", shape_str(shape()), " (", numel(),
                " elements) as ", shape_str(new_shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = new_shape;
  impl->strides = contiguous_strides(new_shape);
  return Tensor(impl);
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  check_defined("slice()");
  GLIMPSE_CHECK(dim() >= 1, "slice(): needs at least one dimension");
  GLIMPSE_CHECK(0 <= begin && begin <= end && end <= impl_->shape[0], "slice(", begin, ", ", end,
                "): out of range for shape ", shape_str(shape()));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset + begin * impl_->strides[0];
  impl->shape = impl_->shape;
  impl->shape[0] = end - begin;
  impl->strides = impl_->strides;
  return Tensor(impl);
}

Tensor Tensor::contiguous() const {
  check_defined("contiguous()");
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  check_defined("clone()");
  Tensor out = empty(shape(), device());
  out.copy_from(*this);
  return out;
}

Tensor Tensor::detach() const {
  check_defined("detach()");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  return Tensor(impl);
}

Tensor Tensor::to(Device dev) const {
  check_defined("to()");
  if (dev == device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), dev);
  Allocator& a = allocator_for(dev.is_cpu() ? src.device().type : dev.type);
  a.copy(out.impl_->storage->data(), dev, src.impl_->storage->data() + src.impl_->offset, src.device(),
         static_cast<size_t>(numel()) * sizeof(float));
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  check_defined("copy_from()");
  GLIMPSE_CHECK(src.shape() == shape(), "copy_from(): source shape ", shape_str(src.shape()),
                " does not match destination shape ", shape_str(shape()));
  check_same_device(*this, src, "copy_from");
  if (is_contiguous() && src.is_contiguous()) {
    allocator_for(device().type)
        .copy(impl_->storage->data() + impl_->offset, device(), src.impl_->storage->data() + src.impl_->offset,
              src.device(), static_cast<size_t>(numel()) * sizeof(float));
    return;
  }
  check_cpu(*this, "copy_from (strided)");
  // General strided copy, row-major odometer over the shape.
  const int64_t n = numel(), nd = dim();
  std::vector<int64_t> idx(nd, 0);
  float* dst = impl_->storage->data();
  const float* s = src.impl_->storage->data();
  for (int64_t k = 0; k < n; ++k) {
    int64_t od = impl_->offset, os = src.impl_->offset;
    for (int64_t d = 0; d < nd; ++d) {
      od += idx[d] * impl_->strides[d];
      os += idx[d] * src.impl_->strides[d];
    }
    dst[od] = s[os];
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < impl_->shape[d]) break;
      idx[d] = 0;
    }
  }
}

void Tensor::fill_(float value) {
  check_defined("fill_()");
  GLIMPSE_CHECK(is_contiguous(), "fill_(): needs a contiguous tensor");
  allocator_for(device().type).fill(impl_->storage->data() + impl_->offset, device(), value, numel());
}

void Tensor::add_(const Tensor& other, float alpha) {
  GLIMPSE_CHECK(other.shape() == shape(), "add_(): shapes ", shape_str(shape()), " and ", shape_str(other.shape()),
                " differ");
  dispatch("add_", device(), GLIMPSE_KERNEL(add_scaled), *this, other, alpha);
}

// On the CPU a plain loop (x * s, bit for bit what it always was); elsewhere affine(x, s, 0) in place.
void Tensor::scale_(float s) {
  if (device().is_cpu()) {
    float* d = data();
    const int64_t n = numel();
    for (int64_t i = 0; i < n; ++i) d[i] *= s;
    return;
  }
  GLIMPSE_CHECK(is_contiguous(), "scale_(): needs a contiguous tensor");
  dispatch("scale_", device(), GLIMPSE_KERNEL(affine_forward), *this, *this, s, 0.f);
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.device() != b.device()) detail::operands_on_two_devices(op, a.device(), b.device());
}

void check_cpu(const Tensor& t, const char* op) {
  GLIMPSE_CHECK(t.defined(), op, ": undefined tensor");
  GLIMPSE_CHECK(t.device().is_cpu(), op, ": no ", t.device().str(), " implementation (CPU only); move the tensor ",
                "with .to(Device::cpu())");
}

void check_dim(const Tensor& t, int64_t dim, const char* op, const char* what) {
  GLIMPSE_CHECK(t.dim() == dim, op, ": ", what, " must have ", dim, " dimensions, got shape ", shape_str(t.shape()));
}

}  // namespace glimpse
