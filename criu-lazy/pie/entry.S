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

	.section .note.GNU-stack, "", @progbits
