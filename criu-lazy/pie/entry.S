/*
 * The first bytes of the blob (pie.lds puts .text.entry at offset 0).
 *
 * The new task jumps here with %rdi = struct restorer_args * and %rsp at
 * the top of the blob's own stack.  restorer_main() does every step and
 * records the outcome in the args; then the task stops at int3 and the
 * restore process takes over with ptrace.  It never comes back here.
 */
	.section .text.entry, "ax"
	.globl	restorer_entry
	.hidden	restorer_entry
	.type	restorer_entry, @function
restorer_entry:
	xorl	%ebp, %ebp
	andq	$-16, %rsp
	call	restorer_main
1:	int3
	jmp	1b
	.size	restorer_entry, . - restorer_entry

/*
 * A `syscall` instruction the restore process runs syscalls at, with
 * ptrace, after the final stop (the last one unmaps the blob itself).
 */
	.globl	restorer_export_syscall
	.hidden	restorer_export_syscall
restorer_export_syscall:
	syscall
	int3

/*
 * long rst_clone3_thread(void *ca, u64 size, void (*fn)(void *), void *arg)
 *
 * clone3 for a thread of the task: the parent gets the new tid (or an
 * error) back; the child, on the stack clone_args gave it, with every
 * register but %rax and %rsp as the parent had them, calls fn(arg), which
 * never returns.
 */
	.text
	.globl	rst_clone3_thread
	.hidden	rst_clone3_thread
	.type	rst_clone3_thread, @function
rst_clone3_thread:
	pushq	%r12
	pushq	%r13
	movq	%rdx, %r12
	movq	%rcx, %r13
	movl	$435, %eax		/* __NR_clone3 */
	syscall
	testq	%rax, %rax
	jz	1f
	popq	%r13
	popq	%r12
	ret
1:	xorl	%ebp, %ebp
	andq	$-16, %rsp
	movq	%r13, %rdi
	call	*%r12
2:	pause
	jmp	2b
	.size	rst_clone3_thread, . - rst_clone3_thread

	.section .note.GNU-stack, "", @progbits
