//! Bounds-checked big-endian field access: a field outside the packet is an
//! error, never a panic.

use super::OffloadError;

pub(crate) fn slice(p: &[u8], at: usize, len: usize) -> Result<&[u8], OffloadError> {
    p.get(at..at.checked_add(len).ok_or(OffloadError::Truncated)?)
        .ok_or(OffloadError::Truncated)
}

fn slice_mut(p: &mut [u8], at: usize, len: usize) -> Result<&mut [u8], OffloadError> {
    p.get_mut(at..at.checked_add(len).ok_or(OffloadError::Truncated)?)
        .ok_or(OffloadError::Truncated)
}

pub(crate) fn u8_at(p: &[u8], at: usize) -> Result<u8, OffloadError> {
    p.get(at).copied().ok_or(OffloadError::Truncated)
}

pub(crate) fn u16_at(p: &[u8], at: usize) -> Result<u16, OffloadError> {
    let b = slice(p, at, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

pub(crate) fn u32_at(p: &[u8], at: usize) -> Result<u32, OffloadError> {
    let b = slice(p, at, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn set_u8(p: &mut [u8], at: usize, v: u8) -> Result<(), OffloadError> {
    *p.get_mut(at).ok_or(OffloadError::Truncated)? = v;
    Ok(())
}

pub(crate) fn set_u16(p: &mut [u8], at: usize, v: u16) -> Result<(), OffloadError> {
    slice_mut(p, at, 2)?.copy_from_slice(&v.to_be_bytes());
    Ok(())
}

pub(crate) fn set_u32(p: &mut [u8], at: usize, v: u32) -> Result<(), OffloadError> {
    slice_mut(p, at, 4)?.copy_from_slice(&v.to_be_bytes());
    Ok(())
}
