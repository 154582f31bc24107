//! Conversion between the kernel's user_regs_struct and the image's
//! named register record.

use stasis_image::Registers;

pub fn from_user(regs: &libc::user_regs_struct) -> Registers {
    Registers {
        r15: regs.r15,
        r14: regs.r14,
        r13: regs.r13,
        r12: regs.r12,
        rbp: regs.rbp,
        rbx: regs.rbx,
        r11: regs.r11,
        r10: regs.r10,
        r9: regs.r9,
        r8: regs.r8,
        rax: regs.rax,
        rcx: regs.rcx,
        rdx: regs.rdx,
        rsi: regs.rsi,
        rdi: regs.rdi,
        orig_rax: regs.orig_rax,
        rip: regs.rip,
        cs: regs.cs,
        eflags: regs.eflags,
        rsp: regs.rsp,
        ss: regs.ss,
        fs_base: regs.fs_base,
        gs_base: regs.gs_base,
        ds: regs.ds,
        es: regs.es,
        fs: regs.fs,
        gs: regs.gs,
    }
}

pub fn to_user(regs: &Registers) -> libc::user_regs_struct {
    libc::user_regs_struct {
        r15: regs.r15,
        r14: regs.r14,
        r13: regs.r13,
        r12: regs.r12,
        rbp: regs.rbp,
        rbx: regs.rbx,
        r11: regs.r11,
        r10: regs.r10,
        r9: regs.r9,
        r8: regs.r8,
        rax: regs.rax,
        rcx: regs.rcx,
        rdx: regs.rdx,
        rsi: regs.rsi,
        rdi: regs.rdi,
        orig_rax: regs.orig_rax,
        rip: regs.rip,
        cs: regs.cs,
        eflags: regs.eflags,
        rsp: regs.rsp,
        ss: regs.ss,
        fs_base: regs.fs_base,
        gs_base: regs.gs_base,
        ds: regs.ds,
        es: regs.es,
        fs: regs.fs,
        gs: regs.gs,
    }
}
